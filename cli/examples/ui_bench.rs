//! The dashboard under load, in a real headless Chromium: `bench/ui.sh` starts a dispatcher,
//! workers, `pogo ui` and chromedriver, submits a job of many hosts, and runs this to measure
//! the job's page. It prints, and asserts nothing:
//!
//! - load: from asking for the job's page to every host of the schedule drawn;
//! - while the job's events arrive: their rate (from the dispatcher's own sequence numbers),
//!   how late the page's timers fire (a page that keeps up never blocks its event loop for
//!   long), and how many hosts the page shows behind the dispatcher;
//! - after the job ends: how long until the page shows every host's final state.
//!
//! Usage: ui_bench --driver URL --ui URL_WITH_TOKEN --job JOB --hosts N [--journal PATH]
//! (with `--journal`, JOB is a local run of `pogo ui`'s state dir, and PATH its journal)

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| {
            panic!("usage: ui_bench --driver URL --ui URL --job JOB --hosts N (missing {name})")
        })
}

async fn wait_for(browser: &Client, script: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if browser.execute(script, vec![]).await.unwrap() == Value::Bool(true) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "gave up waiting for: {script}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Where the job stands on the server's side: whether it ended, its succeeded hosts, and its
/// last event's sequence number.
struct Standing {
    ended: bool,
    succeeded: u64,
    last_event: u64,
}

/// A job's standing, as the dispatcher says it (fetched by the page itself, its session
/// cookie going along); a local run's, from its journal (one event per line).
async fn standing(browser: &Client, job: &str, journal: Option<&str>) -> Standing {
    if let Some(path) = journal {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        return Standing {
            ended: complete.contains("\"event\":\"run_finished\""),
            succeeded: complete.matches("\"state\":\"succeeded\"").count() as u64,
            last_event: complete.lines().count() as u64,
        };
    }
    let script = r#"
const [job, done] = [arguments[0], arguments[arguments.length - 1]];
fetch('/v1/jobs', { credentials: 'same-origin' })
  .then((r) => r.json())
  .then((jobs) => done(jobs.find((j) => j.id === job) || null))
  .catch((e) => done(String(e)));
"#;
    let summary = browser
        .execute_async(script, vec![json!(job)])
        .await
        .unwrap();
    Standing {
        ended: matches!(
            summary["state"].as_str(),
            Some("succeeded" | "failed" | "stopped")
        ),
        succeeded: summary["counts"]["succeeded"].as_u64().unwrap_or(0),
        last_event: summary["last_event"].as_u64().unwrap_or(0),
    }
}

const SUCCEEDED_ON_PAGE: &str =
    "return document.querySelectorAll('#schedule .host[data-state=\"succeeded\"]').length";

/// Records how late a 50 ms timer fires: the page's event loop blocked for that long.
const LAG_MONITOR: &str = r#"
window.pogoLag = [];
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  window.pogoLag.push(Math.max(0, now - last - 50));
  last = now;
}, 50);
return true;
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (driver, ui, job) = (
        arg(&args, "--driver"),
        arg(&args, "--ui"),
        arg(&args, "--job"),
    );
    let hosts: usize = arg(&args, "--hosts").parse().expect("--hosts N");
    // A local run (`--journal PATH`: its journal), or a job of the dispatcher.
    let journal = args
        .iter()
        .position(|a| a == "--journal")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let page = if journal.is_some() { "runs" } else { "jobs" };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver)
        .await
        .expect("cannot reach chromedriver");
    browser.goto(&ui).await.unwrap();
    wait_for(
        &browser,
        "return !!document.getElementById('nav-home')",
        Duration::from_secs(30),
    )
    .await;
    let base = ui.split("/ui/").next().unwrap().to_string();

    let start = Instant::now();
    browser
        .goto(&format!("{base}/ui/#/{page}/{job}"))
        .await
        .unwrap();
    let drawn =
        format!("return document.querySelectorAll('#schedule .host[data-host]').length >= {hosts}");
    wait_for(&browser, &drawn, Duration::from_secs(60)).await;
    let load = start.elapsed();
    let render = browser
        .execute("const s = document.getElementById('schedule'); return s && s.getAttribute('data-render-ms')", vec![])
        .await
        .unwrap();
    println!(
        "load: job page of {hosts} hosts drawn in {:.0} ms (schedule render {} ms)",
        load.as_secs_f64() * 1000.0,
        render.as_str().unwrap_or("?")
    );

    browser.execute(LAG_MONITOR, vec![]).await.unwrap();
    let first = standing(&browser, &job, journal.as_deref()).await;
    let (t0, seq0) = (Instant::now(), first.last_event);
    let mut behind_max = 0i64;
    let mut behind_sum = 0i64;
    let mut samples = 0i64;
    let last = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page = browser.execute(SUCCEEDED_ON_PAGE, vec![]).await.unwrap();
        let now = standing(&browser, &job, journal.as_deref()).await;
        let behind = now.succeeded as i64 - page.as_i64().unwrap_or(0);
        behind_max = behind_max.max(behind);
        behind_sum += behind.max(0);
        samples += 1;
        if now.ended {
            break now;
        }
    };
    let window = t0.elapsed();
    let events = last.last_event.saturating_sub(seq0);
    let all = format!(
        "return document.querySelectorAll('#schedule .host[data-state=\"succeeded\"]').length >= {}",
        last.succeeded
    );
    let catch_up = wait_for(&browser, &all, Duration::from_secs(60)).await;
    let lags: Vec<f64> = serde_json::from_value(
        browser
            .execute("return window.pogoLag", vec![])
            .await
            .unwrap(),
    )
    .unwrap_or_default();
    let mut sorted = lags.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "live: {events} events in {:.1} s ({:.0} events/s) while the page was open",
        window.as_secs_f64(),
        events as f64 / window.as_secs_f64()
    );
    println!(
        "live: timer lateness (event-loop blocking) median {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} ticks",
        pick(0.5),
        pick(0.99),
        sorted.last().copied().unwrap_or(0.0),
        sorted.len()
    );
    println!(
        "live: page behind the dispatcher by {:.0} hosts on average, {behind_max} at most (sampled every 0.5 s)",
        behind_sum as f64 / samples.max(1) as f64
    );
    println!(
        "end: the page showed every host's final state {:.0} ms after the dispatcher said the job ended",
        catch_up.as_secs_f64() * 1000.0
    );
    browser.close().await.unwrap();
}
