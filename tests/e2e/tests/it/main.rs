//! The end-to-end scenarios, one test binary (linked once): the 10,000-payment flow, faults mid-flow,
//! an upgrade and a key rotation while payments flow.

mod faults;
mod flow;
mod rotation;
mod upgrade;
