//! End-to-end tests of settle live in `tests/`: they run relayer, indexer and API together (the
//! code of `settle serve`) against real anvil, Postgres and SoftHSM2 and drive them through the
//! REST API. This library is empty on purpose.
