//! Fleets in the core: budgets shared by every job, one task per host, stale and unfleeted
//! submissions, closing, and what survives a restart.

use super::*;
use std::collections::BTreeSet;

use pogo_model::ALLOW_STALE;

const EAST_1: &str = "tag:\n  colo:\n    east: [a, b, c]\n    west: [w1, w2]\nconstraint:\n  $colo: { max_parallel: 1 }\n";
const EAST_2: &str = "tag:\n  colo:\n    east: [a, b, c]\n    west: [w1, w2]\nconstraint:\n  $colo: { max_parallel: 2 }\n";

impl Rig {
    async fn push(&self, fleet: &str, config: &str) -> Result<FleetRevisionInfo, ApiErr> {
        let fleet = fleet.to_string();
        let push = PushFleet {
            config: config.to_string(),
            config_name: "fleet.yaml".into(),
            outputs: BTreeMap::new(),
        };
        self.handle
            .call(|reply| Cmd::PushFleet {
                fleet,
                push: Box::new(push),
                by: "alice".into(),
                reply,
            })
            .await
    }

    async fn try_submit(&self, plan: Plan, overrides: &[&str]) -> Result<JobSummary, ApiErr> {
        self.try_send(submission(plan, Default::default(), overrides))
            .await
    }

    async fn close(&self, job: &str) -> Result<JobSummary, ApiErr> {
        let id = job.to_string();
        self.handle
            .call(|reply| Cmd::Close {
                id,
                by: "bob".into(),
                reply,
            })
            .await
    }

    /// Runs every job to its end with one worker, each task's exit code from `exit`; checks
    /// after each poll that no group of `limits` (group hosts, limit) has more hosts running
    /// than its limit and that no host runs twice. Returns the hosts in the order they ran.
    async fn drain(
        &self,
        limits: &[(&[&str], usize)],
        exit: impl Fn(&Task) -> i32,
    ) -> Vec<(String, String)> {
        let mut ran = Vec::new();
        let mut running: Vec<Task> = Vec::new();
        loop {
            running.extend(self.poll("w1", 100).await);
            if running.is_empty() {
                return ran;
            }
            let hosts: Vec<&str> = running.iter().map(|t| t.host.as_str()).collect();
            let mut distinct = hosts.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), hosts.len(), "a host runs twice: {hosts:?}");
            for (group, limit) in limits {
                let inside = hosts.iter().filter(|h| group.contains(h)).count();
                assert!(
                    inside <= *limit,
                    "{group:?} has {inside} running: {hosts:?}"
                );
            }
            let task = running.remove(0);
            ran.push((task.job.clone(), task.host.clone()));
            self.report("w1", &task, exit(&task)).await;
        }
    }
}

/// A plan compiled from `config` by the planner, as `pogo plan` makes it.
fn compiled(config: &str, targets: &str) -> Plan {
    let config = pogo_planner::Config::parse("fleet.yaml", config).unwrap();
    let request = pogo_planner::PlanRequest {
        hosts: Some(targets.split_whitespace().map(str::to_string).collect()),
        command: Some("true".into()),
        config_name: "fleet.yaml".into(),
        ..Default::default()
    };
    pogo_planner::compile(&config, &request).unwrap()
}

#[rstest]
#[tokio::test]
async fn a_fleet_budget_holds_every_job_whatever_their_plans_say(
    #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
) {
    let rig = Rig::new(kind);
    let pushed = rig.push("prod", EAST_1).await.unwrap();
    assert_eq!((pushed.revision, pushed.hosts, pushed.budgets), (1, 5, 2));
    // Pushing the same config again makes no new revision.
    assert_eq!(rig.push("prod", EAST_1).await.unwrap().revision, 1);
    // Three jobs over the same hosts: one compiled from the fleet's config, one whose plan
    // has no group at all (a config-less sketch), one whose group is hand-raised to 1000.
    let fresh = rig.submit(compiled(EAST_1, "a b c")).await;
    let bare = rig.submit(Plan::sketch("a b c").with_job_limit(3)).await;
    let raised = Plan::sketch("c b a").with_job_limit(3).with_group(
        "$colo.east",
        Amount::number(1000),
        "c b a",
    );
    let raised = rig.submit(raised).await;
    let ran = rig.drain(&[(&["a", "b", "c"], 1)], |_| 0).await;
    assert_eq!(ran.len(), 9, "{ran:?}");
    // Jobs took turns: the first three hosts started came from three jobs.
    let first: BTreeSet<&str> = ran[..3].iter().map(|(job, _)| job.as_str()).collect();
    assert_eq!(first.len(), 3, "{ran:?}");
    for job in [&fresh.id, &bare.id, &raised.id] {
        assert_eq!(rig.job(job).await.summary.state, JobState::Succeeded);
    }
}

#[rstest]
#[tokio::test]
async fn a_stale_plan_is_refused_naming_the_change_and_runs_when_accepted(
    #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
) {
    let rig = Rig::new(kind);
    rig.push("prod", EAST_1).await.unwrap();
    let old = compiled(EAST_1, "a b");
    rig.push("prod", EAST_2).await.unwrap();
    let refused = rig.try_submit(old.clone(), &[]).await.unwrap_err();
    assert_eq!(refused.status, 400);
    for part in [
        "plan is stale for fleet prod",
        "revision 1",
        "revision 2 (pushed by alice) is current",
        "`$colo.east` max_parallel 1 -> 2",
        "--allow-stale",
    ] {
        assert!(refused.message.contains(part), "{}", refused.message);
    }
    // A plan of the current config goes; an accepted stale one too, under the current budgets.
    rig.submit(compiled(EAST_2, "a b")).await;
    rig.try_submit(old, &[ALLOW_STALE]).await.unwrap();
}

#[rstest]
#[tokio::test]
async fn hosts_in_no_fleet_are_refused_unless_allowed_and_without_fleets_all_go(
    #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
) {
    let rig = Rig::new(kind);
    // No fleet yet: any host goes.
    rig.submit(Plan::sketch("z")).await;
    rig.push("prod", EAST_1).await.unwrap();
    let refused = rig
        .try_submit(Plan::sketch("a z y"), &[])
        .await
        .unwrap_err();
    assert!(
        refused
            .message
            .contains("2 hosts of the plan are in no fleet")
            && refused.message.contains("`z`, `y`")
            && refused.message.contains("--allow-unfleeted"),
        "{}",
        refused.message
    );
    rig.try_submit(Plan::sketch("a z y"), &[ALLOW_UNFLEETED])
        .await
        .unwrap();
    // A host in two fleets is refused at push.
    let twice = rig.push("other", "tag:\n  g: [a, q]\n").await.unwrap_err();
    assert_eq!(twice.status, 409);
    assert!(
        twice.message.contains("host `a` is in fleet `prod`"),
        "{}",
        twice.message
    );
}

#[rstest]
#[tokio::test]
async fn a_failed_host_holds_its_budget_across_jobs_and_restarts_until_its_job_is_closed(
    #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
) {
    let mut rig = Rig::new(kind);
    rig.push("prod", EAST_1).await.unwrap();
    let breaker = rig.submit(Plan::sketch("a")).await;
    rig.drain(&[], |_| 1).await;
    assert_eq!(rig.job(&breaker.id).await.summary.state, JobState::Failed);
    // `a` is down in `$colo.east` (max 1): a job over b and c can start nothing, and ends
    // blocked, naming the host and the job that hold it.
    let blocked = rig.submit(Plan::sketch("b c")).await;
    assert!(rig.poll("w1", 10).await.is_empty());
    let summary = rig.job(&blocked.id).await.summary;
    assert_eq!(summary.state, JobState::Stopped);
    let reasons = summary.reasons.join("; ");
    assert!(
        reasons.contains("$colo.east") && reasons.contains("a") && reasons.contains(&breaker.id),
        "{reasons}"
    );
    // The west hosts are in another budget: they run.
    let west = rig.submit(Plan::sketch("w1 w2")).await;
    rig.drain(&[(&["w1", "w2"], 1)], |_| 0).await;
    assert_eq!(rig.job(&west.id).await.summary.state, JobState::Succeeded);
    // A restart rebuilds the budget from the store: still held.
    rig.restart().await;
    let again = rig.submit(Plan::sketch("c")).await;
    assert!(rig.poll("w1", 10).await.is_empty());
    assert_eq!(rig.job(&again.id).await.summary.state, JobState::Stopped);
    // A running job cannot be closed; an ended one can, once, and then frees its hosts.
    let closed = rig.close(&breaker.id).await.unwrap();
    assert!(closed.closed);
    assert!(rig.close(&breaker.id).await.unwrap().closed);
    let refused = resume(&rig, &breaker.id, None).await.unwrap_err();
    assert!(
        refused.message.contains("was closed by bob"),
        "{}",
        refused.message
    );
    resume(&rig, &blocked.id, None).await.unwrap();
    let ran = rig.drain(&[(&["a", "b", "c"], 1)], |_| 0).await;
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert_eq!(
        rig.job(&blocked.id).await.summary.state,
        JobState::Succeeded
    );
}

#[rstest]
#[tokio::test]
async fn a_running_job_cannot_be_closed(#[values(Kind::Sqlite, Kind::Postgres)] kind: Kind) {
    let rig = Rig::new(kind);
    let job = rig.submit(Plan::sketch("a")).await;
    let refused = rig.close(&job.id).await.unwrap_err();
    assert_eq!(refused.status, 409);
    assert!(
        refused.message.contains("is running"),
        "{}",
        refused.message
    );
}

/// `pogo.db` as the previous release left it (schema version 2): a succeeded job, a job
/// stopped with host `e2` failed, and a job still running with every host pending; its
/// `$colo` groups (`pogo-v2.cfg`) allow one host at a time.
const V2_DB: &[u8] = include_bytes!("../../../../tests/fixtures/pogo-v2.db");
const V2_CONFIG: &str = include_str!("../../../../tests/fixtures/pogo-v2.cfg");

#[tokio::test]
async fn a_database_of_the_previous_release_is_migrated_and_its_failures_count_once_fleets_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(super::super::super::store::DB_FILE), V2_DB).unwrap();
    let mut rig = Rig {
        path: dir.path().to_path_buf(),
        _dir: dir,
        database: None,
        handle: CoreHandle::new(std::sync::mpsc::channel().0),
        thread: None,
    };
    rig.start();
    let jobs = rig.handle.call(|reply| Cmd::Jobs { reply }).await.unwrap();
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [JobState::Running, JobState::Stopped, JobState::Succeeded]
    );
    let (running, stopped) = (jobs[0].id.clone(), jobs[1].id.clone());
    // The running job goes on under its own groups, as before.
    let ran = rig
        .drain(&[(&["e1", "e2", "e3"], 1), (&["w1", "w2"], 1)], |_| 0)
        .await;
    assert_eq!(ran.len(), 5);
    assert_eq!(rig.job(&running).await.summary.state, JobState::Succeeded);
    // Its `e2` succeeded since: the stopped job's failure of it no longer counts.
    rig.push("colo", V2_CONFIG).await.unwrap();
    let job = rig.submit(Plan::sketch("e1 e3")).await;
    rig.drain(&[(&["e1", "e2", "e3"], 1)], |_| 0).await;
    assert_eq!(rig.job(&job.id).await.summary.state, JobState::Succeeded);
    // A host failed in an old job after fleets exist holds its place.
    let breaker = rig.submit(Plan::sketch("e3")).await;
    rig.drain(&[], |_| 7).await;
    assert_eq!(rig.job(&breaker.id).await.summary.state, JobState::Failed);
    let held = rig.submit(Plan::sketch("e1")).await;
    assert!(rig.poll("w1", 4).await.is_empty());
    assert_eq!(rig.job(&held.id).await.summary.state, JobState::Stopped);
    rig.close(&stopped).await.unwrap();
    rig.close(&breaker.id).await.unwrap();
    resume(&rig, &held.id, None).await.unwrap();
    rig.drain(&[], |_| 0).await;
    assert_eq!(rig.job(&held.id).await.summary.state, JobState::Succeeded);
    rig.restart().await;
    let conn =
        rusqlite::Connection::open(rig.path.join(super::super::super::store::DB_FILE)).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, super::super::super::store::SCHEMA_VERSION);
}

#[rstest]
#[tokio::test]
async fn a_job_its_own_failure_blocks_says_why_and_what_it_skips_before_it_ends(
    #[values(Kind::Sqlite, Kind::Postgres)] kind: Kind,
) {
    let rig = Rig::new(kind);
    rig.push("prod", EAST_1).await.unwrap();
    // b fails and stays down in `$colo.east` (max 1): c can never start.
    let job = rig.submit(Plan::sketch("b c").with_max_failures(5)).await;
    rig.drain(&[], |task| if task.host == "b" { 1 } else { 0 })
        .await;
    assert_eq!(rig.job(&job.id).await.summary.state, JobState::Stopped);
    let kinds: Vec<String> = rig
        .events(&job.id)
        .await
        .iter()
        .map(|record| {
            let value = serde_json::to_value(&record.event).unwrap();
            value["event"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    // A client that reads until `run_finished` hears why, and of the skipped host.
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("run_finished"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "run_blocked"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "hosts_skipped"), "{kinds:?}");
    let detail = rig.job(&job.id).await;
    assert_eq!(detail.host_states[1].state, "skipped");
}
