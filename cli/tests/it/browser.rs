//! The web UI in a real headless Chromium: `settle dev --demo 120` runs the whole stack (anvil,
//! Postgres, SoftHSM2, relayer, indexer, API with its pages), then `tests/browser/pages.mjs`
//! (playwright-core driving Debian's `chromium`) logs in with each demo key, checks every page's
//! figures against the JSON API, checks that one merchant cannot see another's payouts, that the
//! evidence page passes every check for a real payment and fails one for tampered evidence, and
//! saves a screenshot of each page under `target/browser/`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use settle_testkit::{TestToken, postgres};
use sqlx::{Connection, PgConnection};

/// Demo payments: two or three to each of the 50 demo merchants, so each merchant page has a few.
const DEMO: u32 = 120;

/// Stops `settle dev` with SIGTERM (as Ctrl-C would) when the test ends, however it ends.
struct Stack {
    child: Child,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `settle dev` printed: the API, the chain and the demo keys.
#[derive(Debug, Default)]
struct Printed {
    api: String,
    rpc: String,
    integrator: String,
    auditor: String,
    admin: String,
    merchants: Vec<(String, String)>,
}

/// The first word after `prefix` on `line`.
fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.split_whitespace().next()
}

fn parse(lines: &[String]) -> Printed {
    let mut printed = Printed::default();
    for line in lines {
        if let Some(url) = after(line, "settle dev: api        ") {
            printed.api = url.to_owned();
        } else if let Some(url) = after(line, "settle dev: anvil      ") {
            printed.rpc = url.to_owned();
        } else if let Some(rest) = line.strip_prefix("settle dev: key        ") {
            let (who, token) = rest.rsplit_once(": ").expect("a key line names its owner");
            match who.split_once(' ') {
                Some(("integrator", _)) => printed.integrator = token.to_owned(),
                Some(("auditor", _)) => printed.auditor = token.to_owned(),
                Some(("admin", _)) => printed.admin = token.to_owned(),
                Some(("merchant", address)) => printed
                    .merchants
                    .push((address.to_owned(), token.to_owned())),
                _ => panic!("unexpected key line {line:?}"),
            }
        }
    }
    printed
}

#[tokio::test]
async fn every_page_renders_its_roles_figures_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let token = TestToken::create().expect("token");
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!(
        "settle_dev_ui_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let started = Instant::now();
    let mut child = crate::settle_on(&token)
        .args([
            "dev",
            "--demo",
            &DEMO.to_string(),
            "--anvil-port",
            "0",
            "--api-port",
            "0",
        ])
        .args(["--dev-database", &database, "--token", token.token_label()])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("settle dev starts");
    let stdout = child.stdout.take().expect("stdout");
    let stack = Stack { child };

    // Read what it prints until it says it runs (the demo is settled, indexed and reconciled).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("settle dev said nothing more ({e}): {lines:#?}"));
        let running = line == "settle dev: running; press Ctrl-C to stop";
        lines.push(line);
        if running {
            break;
        }
    }
    let stack_seconds = started.elapsed().as_secs_f64();
    let printed = parse(&lines);
    assert!(printed.api.starts_with("http://127.0.0.1:"), "{lines:#?}");
    assert!(printed.rpc.starts_with("http://127.0.0.1:"), "{lines:#?}");
    assert_eq!(printed.merchants.len(), 2, "{lines:#?}");
    let screenshots = root.join("target/browser");

    let browser_started = Instant::now();
    let output = Command::new("node")
        .arg(root.join("tests/browser/pages.mjs"))
        .current_dir(&root)
        .env("SETTLE_UI_URL", &printed.api)
        .env("SETTLE_RPC_URL", &printed.rpc)
        .env("SETTLE_KEY_INTEGRATOR", &printed.integrator)
        .env("SETTLE_KEY_AUDITOR", &printed.auditor)
        .env("SETTLE_KEY_ADMIN", &printed.admin)
        .env("SETTLE_MERCHANT_ADDRESS", &printed.merchants[0].0)
        .env("SETTLE_KEY_MERCHANT", &printed.merchants[0].1)
        .env("SETTLE_OTHER_MERCHANT_ADDRESS", &printed.merchants[1].0)
        .env("SETTLE_KEY_OTHER_MERCHANT", &printed.merchants[1].1)
        .env("SETTLE_DEMO_PAYMENTS", DEMO.to_string())
        .env("SETTLE_SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs tests/browser/pages.mjs");
    let browser_seconds = browser_started.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    println!("{out}\n{err}");
    println!("stack ready in {stack_seconds:.1} s; browser checks took {browser_seconds:.1} s");
    drop(stack);
    let mut admin = PgConnection::connect(&postgres::admin_url())
        .await
        .expect("admin");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("dropped");
    assert!(
        output.status.success(),
        "the browser checks failed:\n{out}\n{err}"
    );
    assert!(out.contains("all page checks passed"), "{out}");
    for page in [
        "login",
        "merchant",
        "merchant-other-denied",
        "integrator-payments",
        "integrator-payment",
        "auditor-reconciliation",
        "auditor-evidence",
        "auditor-evidence-tampered",
        "auditor-deployment",
        "ops",
        "merchant-phone",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).is_file(),
            "no screenshot of {page}"
        );
    }
}
