//! The harness against real targets: the reference server, and deliberately broken
//! targets (a tampering proxy in front of it) that each class of check must catch.

mod broken;
mod broken_protocol;
mod broken_pusher;
mod broken_state;
mod broken_statuses;
mod cli;
mod pusher;
mod reference;
mod support;
