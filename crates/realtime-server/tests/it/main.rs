//! Integration tests of the reference server: a real node on a loopback port, a real
//! SQLite file, real WebSocket clients.

mod live;
mod rest;
mod support;
mod vendors;
mod multinode; mod store_suite; mod broker_suite; mod engines;
