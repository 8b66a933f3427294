//! Security: Redis AUTH as an ACL user that holds only the commands the
//! project runs, on only its keys and channels; TLS (`rediss://`, cargo
//! feature `tls`) against a TLS-only `redis-server` with a certificate the
//! test makes; no password in Debug output.

#[path = "../support/mod.rs"]
mod support;

mod acl;
mod acl_helpers;
#[cfg(feature = "tls")]
mod tls;
#[cfg(not(feature = "tls"))]
mod tls_off;
#[cfg(feature = "tls")]
mod tls_server;
