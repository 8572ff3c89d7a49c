//! A served API over a fresh database and chain, and a client that speaks to it.

use std::{collections::BTreeMap, sync::Arc};

use alloy::primitives::{Address, U256};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use settle_api::{ApiConfig, AppState, Role, auth};
use settle_relayer::{IntakeConfig, IntegratorLimits, RpcConfig, RpcPool, intake::TokenRule};
use settle_testkit::{TestChain, TestDb};

/// The API on a loopback port, with its database and chain.
pub(crate) struct TestApi {
    pub(crate) db: TestDb,
    pub(crate) chain: TestChain,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    #[allow(dead_code)] // for route tests that read the chain
    pub(crate) contract: Address,
    /// The served state, for driving background work (the webhook worker) from a test.
    pub(crate) state: AppState,
    _server: AbortOnDrop,
}

/// Stops the server task with the test.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response: status, content type and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Answer {
    /// Asserts a problem+json answer with `status` and `code`.
    pub(crate) fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
    }
}

/// Default configuration for tests: the native coin, generous limits, a low rate limit burst.
pub(crate) fn config(contract: Address) -> ApiConfig {
    ApiConfig {
        chain_id: 31337,
        contract,
        intake: IntakeConfig {
            tokens: vec![TokenRule {
                chain_id: 31337,
                token: Address::ZERO,
                max_payment: 10u128.pow(24),
            }],
            max_payees: 4,
        },
        limits: BTreeMap::from([(
            "small-shop".to_owned(),
            IntegratorLimits {
                max_payment: 1_000,
                daily_cap: 1_500,
            },
        )]),
        default_limits: IntegratorLimits {
            max_payment: 10u128.pow(24),
            daily_cap: u128::MAX,
        },
        rate_per_sec: 1_000,
        burst: 1_000,
        max_body_bytes: 64 * 1024,
        max_page: 100,
        senders: Vec::new(),
        low_balance_wei: U256::from(1u8),
    }
}

impl TestApi {
    /// Serves the API with `config`.
    pub(crate) async fn start_with(configure: impl FnOnce(ApiConfig) -> ApiConfig) -> Self {
        Self::start_on(TestChain::start().expect("anvil"), configure).await
    }

    /// Serves the API on `chain` (started, and perhaps deployed to, by the caller) with `config`.
    pub(crate) async fn start_on(
        chain: TestChain,
        configure: impl FnOnce(ApiConfig) -> ApiConfig,
    ) -> Self {
        let db = TestDb::create().await.expect("database");
        settle_relayer::intake::MIGRATOR
            .run(db.pool())
            .await
            .expect("relayer migrations");
        settle_indexer::migrate(db.pool())
            .await
            .expect("indexer migrations");
        settle_api::MIGRATOR
            .run(db.pool())
            .await
            .expect("api migrations");
        let config = configure(config(Address::repeat_byte(0x55)));
        let contract = config.contract;
        let rpc = Arc::new(RpcPool::new(&[chain.endpoint()], RpcConfig::default()).expect("rpc"));
        let state = AppState::new(db.pool().clone(), rpc, config, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let served = state.clone();
        let server = tokio::spawn(async move {
            settle_api::serve(listener, served, std::future::pending())
                .await
                .expect("serves");
        });
        Self {
            db,
            chain,
            base,
            client: reqwest::Client::new(),
            contract,
            state,
            _server: AbortOnDrop(server),
        }
    }

    /// Serves the API with the default test configuration.
    pub(crate) async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// A new key's bearer token.
    pub(crate) async fn key(&self, role: Role, owner: &str) -> String {
        auth::create_key(self.db.pool(), role, owner)
            .await
            .expect("key")
            .token
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("answered");
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        Answer {
            status,
            content_type,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// GET with a key.
    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), &[], None).await
    }

    /// Sends raw bytes with a content type.
    #[allow(dead_code)] // for route tests of malformed bodies
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        self.send_raw_with(method, path, token, &[], content_type, body)
            .await
    }

    /// Sends raw bytes with a content type and more headers.
    pub(crate) async fn send_raw_with(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body).send().await.expect("answered");
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        Answer {
            status,
            content_type,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}
