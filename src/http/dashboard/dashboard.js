// The dashboard script.
