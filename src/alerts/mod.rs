//! Alert hooks (feature `service`): transitions POSTed to webhooks.
