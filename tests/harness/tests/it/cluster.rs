//! A private Postgres server: it answers, a restart cuts open connections, and dropping it stops
//! the server.

use settle_testkit::PgCluster;
use sqlx::{Connection, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_server_restarts_cutting_connections_and_stops_when_dropped() {
    let cluster = PgCluster::start().expect("private server");
    let url = cluster.admin_url();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port())
    );
    let mut before = PgConnection::connect(&url).await.expect("connected");
    let started: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text")
        .fetch_one(&mut before)
        .await
        .expect("start time");

    tokio::task::block_in_place(|| cluster.restart()).expect("restarted");
    assert!(
        sqlx::query("SELECT 1").execute(&mut before).await.is_err(),
        "a connection from before the restart is cut"
    );
    let mut after = PgConnection::connect(&url).await.expect("connected again");
    let restarted: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text")
        .fetch_one(&mut after)
        .await
        .expect("start time");
    assert_ne!(restarted, started);
    after.close().await.expect("closed");

    tokio::task::block_in_place(|| cluster.stop()).expect("stopped");
    assert!(PgConnection::connect(&url).await.is_err(), "stopped");
    tokio::task::block_in_place(|| cluster.start_again()).expect("started again");
    PgConnection::connect(&url)
        .await
        .expect("answers again")
        .close()
        .await
        .expect("closed");

    drop(cluster);
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "dropping the cluster stops the server"
    );
}
