//! Integration tests of the reference server: a real node on a loopback port, a real
//! SQLite file, real WebSocket clients.

mod broker_suite;
mod browser;
mod console;
mod cors;
mod crash;
mod cursor;
mod docs;
mod engines;
mod layering;
mod live;
mod logs;
mod messaging;
mod metrics;
mod multinode;
mod pusher_apps;
mod pusher_cluster;
mod pusher_counts;
mod pusher_fallback;
mod pusher_http;
mod pusher_libraries;
mod pusher_socket;
mod pusher_support;
mod pusher_users;
mod pusher_watchlist;
mod pusher_webhooks;
mod recovery;
mod rest;
mod secrets;
mod settings;
mod socket;
mod store_suite;
mod support;
mod tls_support;
mod topup;
mod vendors;
