//! The Lua scripts of `lua/`, loaded with `include_str!`.
