//! The web dashboard, as it is deployed: a real dispatcher and worker running jobs, `pogo ui`
//! in front of them, and for the pages a real headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs).
//!
//! The HTTP tests check what `pogo ui` lets in: only its one-time token opens a session, only
//! its own name in the `Host` header is answered, and a request that changes something needs
//! the session's CSRF token. The browser test watches a job's hosts move from pending to
//! running to succeeded on a page that is never reloaded, halts a job with the page's
//! button, and reads a host's hostile output as text. Screenshots of the pages are written to
//! `dashboard-screenshots/` in the target directory (`target/` unless `CARGO_TARGET_DIR`).

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::config;
use common::deploy::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::Value;

/// A config of six hosts in one thread of three steps, two hosts a step.
const FLEET: &str = "tag:
  step:
    one: [h1, h2]
    two: [h3, h4]
    three: [h5, h6]
sequence:
  rollout:
    - $step.one
    - $step.two
    - $step.three
";

/// `pogo ui` started for `d`: its process and the address it printed, with the token.
fn start_ui(d: &Deployment, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["ui"];
    args.extend_from_slice(extra);
    let mut ui = d.spawn("ui", &args);
    let url = ui.first_line("Dashboard: ");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.contains("/ui/?token="), "{url}");
    (ui, url)
}

/// `http://127.0.0.1:PORT` of an address `pogo ui` printed.
fn origin(url: &str) -> String {
    url.split("/ui/").next().unwrap().to_string()
}

/// An HTTP client that follows no redirects and keeps no cookies: the test sees each answer.
fn http() -> reqwest::Client {
    // Plain HTTP on loopback; reqwest still wants a TLS provider named.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the cookie `name` that an answer sets, and the whole `Set-Cookie` line.
fn set_cookie(answer: &reqwest::Response, name: &str) -> Option<(String, String)> {
    answer
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(|line| {
            let value = line[name.len() + 1..]
                .split(';')
                .next()
                .unwrap()
                .to_string();
            (value, line.to_string())
        })
}

#[test]
fn pogo_ui_opens_with_its_token_answers_its_own_name_and_checks_csrf() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _worker = d.worker("w1", 4);
    d.wait_for_workers(&["w1"]);
    // A local run in the state dir `pogo ui` shows (the test's directory's .pogo).
    d.pogo(&[
        "run",
        "--config",
        &config("t/cfgs/triple.cfg"),
        "--transport",
        "local",
        "--command",
        "echo hi from $POGO_HOST",
        "--yes",
    ])
    .expect(0);
    d.plan(None, &["--command", "sleep 30"]);
    let job = d.submit();
    let (_ui, url) = start_ui(&d, &[]);
    let base = origin(&url);
    let token = url.rsplit_once("token=").unwrap().1.to_string();
    let port = base.rsplit_once(':').unwrap().1.to_string();
    let http = http();
    Deployment::runtime().block_on(async {
        let get = |path: &str, host: &str, cookie: Option<&str>| {
            let mut request = http
                .get(format!("{base}{path}"))
                .header(reqwest::header::HOST, host);
            if let Some(cookie) = cookie {
                request = request.header(reqwest::header::COOKIE, cookie);
            }
            request.send()
        };
        let own = format!("127.0.0.1:{port}");
        // No session, a wrong token: refused.
        assert_eq!(get("/ui/", &own, None).await.unwrap().status(), 401);
        assert_eq!(get("/v1/jobs", &own, None).await.unwrap().status(), 401);
        assert_eq!(
            get("/ui/?token=0123", &own, None).await.unwrap().status(),
            401
        );
        // The right token under another name (DNS rebinding): refused, and not used up.
        for host in [format!("evil.example:{port}"), "127.0.0.1".to_string()] {
            let answer = get(&format!("/ui/?token={token}"), &host, None)
                .await
                .unwrap();
            assert_eq!(answer.status(), 403, "{host}");
            assert!(set_cookie(&answer, &format!("pogo_session_{port}")).is_none());
        }
        // The token opens a session, once, and the browser is sent on without it.
        let answer = get(&format!("/ui/?token={token}"), &own, None)
            .await
            .unwrap();
        assert_eq!(answer.status(), 303);
        assert_eq!(answer.headers()["location"], "/ui/");
        let cookie_name = format!("pogo_session_{port}");
        let (session, line) = set_cookie(&answer, &cookie_name).expect("a session cookie");
        assert!(
            line.contains("HttpOnly") && line.contains("SameSite=Strict"),
            "{line}"
        );
        assert_eq!(
            get(&format!("/ui/?token={token}"), &own, None)
                .await
                .unwrap()
                .status(),
            401
        );
        let session = format!("{cookie_name}={session}");
        // The page, with its policy and a CSRF token.
        let answer = get("/ui/", &own, Some(&session)).await.unwrap();
        assert_eq!(answer.status(), 200);
        let policy = answer.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        let (csrf, _) = set_cookie(&answer, "pogo_csrf").expect("a CSRF cookie");
        // The session under another name: refused.
        let answer = get(
            "/v1/jobs",
            &format!("localhost.evil.example:{port}"),
            Some(&session),
        );
        assert_eq!(answer.await.unwrap().status(), 403);
        // The dispatcher's jobs, through pogo ui with alice's certificate.
        let jobs: Value = get("/v1/jobs", &format!("localhost:{port}"), Some(&session))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jobs[0]["id"], job.as_str());
        let config: Value = get("/ui/config.json", &own, Some(&session))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(config["mode"], "local");
        assert_eq!(config["jobs"], true);
        assert_eq!(config["runs"], true);
        // The local run, in a job's shapes.
        let runs: Value = get("/local/v1/runs", &own, Some(&session))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let run = runs[0]["id"].as_str().unwrap().to_string();
        assert_eq!(runs[0]["state"], "succeeded", "{runs}");
        assert_eq!(runs[0]["counts"]["succeeded"], 9, "{runs}");
        // A GET in the session: the answer's body.
        let read = |path: String| {
            let answer = get(&path, &own, Some(&session));
            async move { answer.await.unwrap().text().await.unwrap() }
        };
        let detail: Value =
            serde_json::from_str(&read(format!("/local/v1/runs/{run}")).await).unwrap();
        assert_eq!(detail["host_states"][0]["host"], "host1");
        assert_eq!(detail["host_states"][0]["state"], "succeeded");
        let output = read(format!(
            "/local/v1/runs/{run}/output?host=host2&after=0&limit=10"
        ))
        .await;
        let line: Value = serde_json::from_str(output.lines().next().unwrap()).unwrap();
        assert_eq!(line["text"], "hi from host2");
        let events = read(format!("/local/v1/runs/{run}/events?after=0")).await;
        let first: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
        assert_eq!(
            (first["seq"].as_u64(), first["event"].as_str()),
            (Some(1), Some("run_started"))
        );

        // Halting the job: refused without the session's CSRF token, done with it.
        let halt = |token: Option<&str>| {
            let mut request = http
                .post(format!("{base}/v1/jobs/{job}/halt"))
                .header(reqwest::header::HOST, &own)
                .header(
                    reqwest::header::COOKIE,
                    format!("{session}; pogo_csrf={csrf}"),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(r#"{"kill":true}"#);
            if let Some(token) = token {
                request = request.header("x-pogo-csrf", token);
            }
            request.send()
        };
        assert_eq!(halt(None).await.unwrap().status(), 403);
        assert_eq!(halt(Some("not-the-token")).await.unwrap().status(), 403);
        assert_eq!(d.status(&job)["state"], "running");
        let answer = halt(Some(&csrf)).await.unwrap();
        assert_eq!(answer.status(), 200);
    });
    let state = d.wait_for_state(&job, "stopped")["state"].clone();
    assert_eq!(state, "stopped");
}

#[test]
fn pogo_ui_listens_on_loopback_only() {
    let d = Deployment::new(&[]);
    let run = d.pogo(&["ui", "--local-only", "--listen", "0.0.0.0:0"]);
    run.expect(64);
    assert!(run.stderr().contains("loopback only"), "{}", run.stderr());
}

// ---------------------------------------------------------------------------------------------
// In a real browser
// ---------------------------------------------------------------------------------------------

/// Where the tests leave their screenshots: `dashboard-screenshots/` in the target directory
/// (`CARGO_TARGET_DIR`, relative to the workspace when relative; else `target/`).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| common::root().join(dir))
        .unwrap_or_else(|| common::root().join("target"));
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free port on loopback.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts chromedriver on loopback and a headless Chromium session through it.
fn browser(d: &Deployment, runtime: &tokio::runtime::Runtime) -> (Proc, Browser) {
    let port = free_port();
    let mut command = Command::new("chromedriver");
    command.arg(format!("--port={port}")).current_dir(d.path());
    let driver = d.spawn_command("chromedriver", command);
    wait_until("chromedriver to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new",
                // Chromium refuses to run as root with its sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--no-first-run",
                "--no-default-browser-check",
            ],
        }),
    );
    let client = runtime
        .block_on(
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .map_err(|e| format!("cannot start Chromium through chromedriver: {e}"))
        .unwrap();
    (driver, client)
}

/// Waits until the page shows `host` (its square in the schedule) in `state`.
async fn host_shows(browser: &Browser, host: &str, state: &str) {
    let script = format!(
        "const h = document.querySelector('#schedule .host[data-host=\"{host}\"]'); \
         return !!h && h.getAttribute('data-state') === '{state}'"
    );
    eventually(browser, &format!("{host} {state}"), &script).await;
}

/// Waits until the page shows the job in `state`.
async fn job_shows(browser: &Browser, state: &str) {
    let script = format!(
        "const j = document.getElementById('job-state'); \
         return !!j && j.getAttribute('data-state') === '{state}'"
    );
    eventually(browser, &format!("the job {state}"), &script).await;
}

/// Clicks the element `locator` finds.
async fn click(browser: &Browser, locator: Locator<'_>) {
    browser.find(locator).await.unwrap().click().await.unwrap();
}

/// Waits until the page asks for a confirmation.
async fn confirmation_shows(browser: &Browser) {
    let script = "const c = document.getElementById('confirm-yes'); \
                  return !!c && c.offsetParent !== null";
    eventually(browser, "the confirmation", script).await;
}

/// Polls `check` in the page until it gives `true`, or fails naming `what`.
async fn eventually(browser: &Browser, what: &str, script: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = browser.execute(script, vec![]).await.unwrap();
        if value == Value::Bool(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} (last: {value})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(name), png).unwrap();
}

/// Records, in the page, every state each host chip shows, in order: a MutationObserver on
/// `data-state`. The page is never reloaded while it records (a reload would lose
/// `window.pogoTest`).
const RECORD_STATES: &str = r#"
window.pogoTest = { states: {} };
const note = (el) => {
  const host = el.getAttribute('data-host');
  const state = el.getAttribute('data-state');
  const seen = (window.pogoTest.states[host] = window.pogoTest.states[host] || []);
  if (seen[seen.length - 1] !== state) seen.push(state);
};
document.querySelectorAll('.host[data-host]').forEach(note);
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.type === 'attributes' && change.target.matches('.host[data-host]')) note(change.target);
    for (const node of change.addedNodes || []) {
      if (node.nodeType === 1) {
        if (node.matches('.host[data-host]')) note(node);
        node.querySelectorAll && node.querySelectorAll('.host[data-host]').forEach(note);
      }
    }
  }
}).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
return true;
"#;

#[test]
fn the_dashboard_shows_a_job_live_halts_one_and_shows_output_as_text() {
    let d = Deployment::new(&["w1"]);
    let _dispatcher = d.dispatcher(0, &[]);
    let _worker = d.worker("w1", 8);
    d.wait_for_workers(&["w1"]);
    // Each host waits for `go-HOST` (so the test sees it running), then prints hostile text.
    let script = d.path().join("host.sh");
    std::fs::write(
        &script,
        "while [ ! -e \"$(dirname \"$0\")/go-$POGO_HOST\" ]; do sleep 0.05; done\n\
         printf '<script>alert(1)</script>\\n\\033[31mred\\033[0m and \\033]0;title\\007plain\\n'\n\
         echo done on $POGO_HOST\n\
         if [ -e \"$(dirname \"$0\")/fail-$POGO_HOST\" ]; then exit 3; fi\n",
    )
    .unwrap();
    std::fs::write(d.path().join("fleet.cfg"), FLEET).unwrap();
    let command = format!("sh {}", script.display());
    d.pogo(&[
        "plan",
        "--config",
        "fleet.cfg",
        "-o",
        "plan.json",
        "--command",
        &command,
        "--concurrent",
        "1",
    ])
    .expect(0);
    let job = d.submit();
    let (_ui, url) = start_ui(&d, &[]);
    let runtime = Deployment::runtime();
    let (_driver, browser) = browser(&d, &runtime);
    let release = |host: &str| d.touch(&format!("go-{host}"));
    runtime.block_on(async {
        browser.goto(&url).await.unwrap();
        // The token is gone from the address: swapped for the session cookie.
        eventually(&browser, "the jobs list", &format!(
            "return !location.search.includes('token') && !!document.querySelector('[data-id=\"{job}\"]')"
        ))
        .await;
        shot(&browser, "jobs.png").await;

        // The job's page: hosts wait, run and succeed, live, with no reload.
        let base = origin(&url);
        browser
            .goto(&format!("{base}/ui/#/jobs/{job}"))
            .await
            .unwrap();
        eventually(&browser, "the schedule", "return document.querySelectorAll('.host[data-host]').length >= 6").await;
        browser.execute(RECORD_STATES, vec![]).await.unwrap();
        for host in ["h1", "h2", "h3", "h4", "h5", "h6"] {
            host_shows(&browser, host, "running").await;
            if host == "h3" {
                shot(&browser, "job.png").await;
            }
            release(host);
            host_shows(&browser, host, "succeeded").await;
        }
        job_shows(&browser, "succeeded").await;
        let seen = browser
            .execute("return window.pogoTest && window.pogoTest.states", vec![])
            .await
            .unwrap();
        let seen: BTreeMap<String, Vec<String>> = serde_json::from_value(seen).unwrap();
        // h1 may have started before the page recorded; every later host was seen waiting.
        for host in ["h2", "h3", "h4", "h5", "h6"] {
            assert_eq!(seen[host], ["pending", "running", "succeeded"], "{host}: {seen:?}");
        }
        assert_eq!(seen["h1"].last().unwrap(), "succeeded");

        // A host's output: hostile text shows as text, and runs nothing.
        browser
            .goto(&format!("{base}/ui/#/jobs/{job}/hosts/h2"))
            .await
            .unwrap();
        eventually(&browser, "h2's output", "const o = document.getElementById('output'); return !!o && o.textContent.includes('done on h2')").await;
        let text = browser
            .execute("return document.getElementById('output').textContent", vec![])
            .await
            .unwrap();
        let text = text.as_str().unwrap();
        assert!(text.contains("<script>alert(1)</script>"), "{text:?}");
        assert!(text.contains("red and plain"), "{text:?}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
        let injected = browser
            .execute("return document.querySelectorAll('#output script, #output *[onerror]').length", vec![])
            .await
            .unwrap();
        assert_eq!(injected, 0);
        assert!(browser.get_alert_text().await.is_err(), "an alert opened");
        shot(&browser, "host.png").await;
    });

    // A second job, halted from its page: its hosts wait to be released again.
    for host in ["h1", "h2", "h3", "h4", "h5", "h6"] {
        std::fs::remove_file(d.path().join(format!("go-{host}"))).unwrap();
    }
    let halted = d.submit();
    d.wait_for_state(&halted, "running");
    runtime.block_on(async {
        let base = origin(&url);
        browser
            .goto(&format!("{base}/ui/#/jobs/{halted}"))
            .await
            .unwrap();
        host_shows(&browser, "h1", "running").await;
        click(&browser, Locator::Id("halt")).await;
        confirmation_shows(&browser).await;
        // Nothing is halted before the operator confirms.
        assert_eq!(d.status(&halted)["state"], "running");
        click(&browser, Locator::Id("confirm-yes")).await;
    });
    let status = d.wait_for_state(&halted, "stopping");
    assert_eq!(status["state"], "stopping");
    runtime.block_on(async {
        job_shows(&browser, "stopping").await;
    });
    // The running host finishes; nothing else starts.
    release("h1");
    let status = d.wait_for_state(&halted, "stopped");
    let states: Vec<&str> = status["host_states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[0], "succeeded");
    assert!(
        states[1..]
            .iter()
            .all(|s| *s == "skipped" || *s == "pending"),
        "{states:?}"
    );

    // A third job whose first host fails: the job stops. Retrying that host, chosen on the
    // page, runs it again and resumes the job, as `pogo retry JOB h1` does.
    for host in ["h1", "h2", "h3", "h4", "h5", "h6"] {
        release(host);
    }
    d.touch("fail-h1");
    let failed = d.submit();
    d.wait_for_state(&failed, "stopped");
    runtime.block_on(async {
        let base = origin(&url);
        browser
            .goto(&format!("{base}/ui/#/jobs/{failed}"))
            .await
            .unwrap();
        host_shows(&browser, "h1", "failed").await;
        job_shows(&browser, "stopped").await;
        eventually(
            &browser,
            "h1's box",
            "return !!document.querySelector('input.pick[data-host=\"h1\"]')",
        )
        .await;
        click(&browser, Locator::Css("input.pick[data-host=\"h1\"]")).await;
        click(&browser, Locator::Id("retry-selected")).await;
        confirmation_shows(&browser).await;
        let question = browser
            .execute(
                "return document.getElementById('confirm-text').textContent",
                vec![],
            )
            .await
            .unwrap();
        assert!(question.as_str().unwrap().contains("h1"), "{question}");
        std::fs::remove_file(d.path().join("fail-h1")).unwrap();
        click(&browser, Locator::Id("confirm-yes")).await;
        host_shows(&browser, "h1", "succeeded").await;
    });
    let status = d.wait_for_state(&failed, "succeeded");
    let h1 = &status["host_states"][0];
    assert_eq!(
        (h1["host"].as_str(), h1["state"].as_str()),
        (Some("h1"), Some("succeeded"))
    );
    // Attempts of its last session (the retry), as its host_finished counts them.
    assert_eq!(h1["attempts"], 1, "{h1}");
    // The hosts the failure had skipped ran once each.
    let rest = &status["host_states"].as_array().unwrap()[1..];
    assert!(
        rest.iter()
            .all(|h| h["state"] == "succeeded" && h["attempts"] == 1),
        "{status}"
    );
    // The halt and the retry given on the dashboard are in the audit trail, as alice's.
    runtime.block_on(async {
        let base = origin(&url);
        browser.goto(&format!("{base}/ui/#/audit")).await.unwrap();
        eventually(
            &browser,
            "the audit trail",
            "const rows = [...document.querySelectorAll('#audit-rows tr')]; \
             return rows.some(r => r.dataset.action === 'halt') \
                 && rows.some(r => r.dataset.action === 'retry') \
                 && rows.every(r => r.children[2].textContent === 'alice')",
        )
        .await;
        shot(&browser, "audit.png").await;
        browser.close().await.unwrap();
    });
}

#[test]
fn a_local_run_shows_live_and_stopped_when_its_pogo_dies() {
    let d = Deployment::new(&[]);
    std::fs::write(d.path().join("fleet.cfg"), FLEET).unwrap();
    let mut run = d.spawn(
        "run",
        &[
            "run",
            "--config",
            "fleet.cfg",
            "--transport",
            "local",
            "--command",
            "sleep 30",
            "--concurrent",
            "1",
            "--yes",
        ],
    );
    let mut id = String::new();
    wait_until("the run to start h1", || {
        let runs = d.pogo(&["runs", "--json"]);
        let runs: Value = serde_json::from_str(&runs.stdout()).unwrap_or(Value::Null);
        id = runs[0]["run_id"].as_str().unwrap_or_default().to_string();
        !id.is_empty()
            && d.pogo(&["log", &id, "--json"])
                .stdout()
                .contains(r#""event":"host_started","host":"h1""#)
    });
    let (_ui, url) = start_ui(&d, &["--local-only"]);
    let runtime = Deployment::runtime();
    let (_driver, browser) = browser(&d, &runtime);
    runtime.block_on(async {
        browser.goto(&url).await.unwrap();
        eventually(
            &browser,
            "the run in the list",
            &format!("return !!document.querySelector('[data-id=\"{id}\"]')"),
        )
        .await;
        browser
            .goto(&format!("{}/ui/#/runs/{id}", origin(&url)))
            .await
            .unwrap();
        host_shows(&browser, "h1", "running").await;
        job_shows(&browser, "running").await;
    });
    // Its pogo dies with h1 running: the page, still open, says so without a reload. (The
    // command it left running goes too, so that nothing outlives the test.)
    let left = descendants(run.pid());
    run.crash();
    for pid in left {
        kill(pid, "KILL");
    }
    runtime.block_on(async {
        job_shows(&browser, "stopped").await;
        host_shows(&browser, "h1", "failed").await;
        host_shows(&browser, "h2", "pending").await;
        let reasons = browser
            .execute(
                "return document.getElementById('reasons').textContent",
                vec![],
            )
            .await
            .unwrap();
        assert!(reasons.as_str().unwrap().contains("--resume"), "{reasons}");
        browser.close().await.unwrap();
    });
}
