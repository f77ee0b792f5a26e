//! Following a job's streams (its events, its output) through lost connections, and `pogo
//! apply --dispatcher`: submit a plan, then show the job as a local apply shows a run, with the
//! same views, ledger and summary.
//!
//! A follower never acts on the job: losing the connection, or the follower's end, changes
//! nothing on the dispatcher. It reconnects with a growing pause and goes on after the last
//! sequence number it saw, so no record is shown twice or skipped.

use std::collections::HashMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures_util::StreamExt;
use pogo_executor::events::{Event, RunResult};
use pogo_executor::runner::Reporter;
use pogo_model::Plan;
use pogo_remote::api::{EventRecord, HaltJob, HostWhy, JobState, OutputRecord, SubmitJob};
use pogo_remote::client::{Client, ClientError, RecordStream};
use tokio::sync::mpsc;

use super::{client_failure, runtime};
use crate::failure::{emit, exit, invalid, Failure};
use pogo_views::report::Where;
use pogo_views::report::{
    summary, tail_hosts, Json, Ledger, Lines, Notice, Progress, SummaryOptions,
};

/// The first pause before reconnecting; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(10);

/// A stream of numbered records that can be opened again after the last one seen.
pub trait Feed: Send + Sync + 'static {
    type Record: Send + 'static;

    /// The records after sequence number `after`, following new ones.
    fn open(
        &self,
        after: u64,
    ) -> impl Future<Output = Result<RecordStream<Self::Record>, ClientError>> + Send;

    fn seq(record: &Self::Record) -> u64;

    /// Whether it follows new records; one that does not ends with the stream.
    fn follows(&self) -> bool;

    /// Whether `record` is the last one wanted (the follower ends after it).
    fn is_last(&self, _record: &Self::Record) -> bool {
        false
    }

    /// Asked when a stream ended without its last record: whether no more will come (the
    /// dispatcher also ends its streams when it shuts down).
    fn over(&self) -> impl Future<Output = Result<bool, ClientError>> + Send;
}

/// What a follower reports.
pub enum Update<T> {
    Record(T),
    /// For the operator: the connection was lost, or is back.
    Notice(String),
    /// No more records will come.
    End,
    /// An error that reconnecting cannot mend (a refusal, an unreadable answer).
    Failed(ClientError),
}

/// Follows `feed` from after `after` on the current runtime; its updates come on the receiver.
/// The follower stops when the receiver is dropped.
pub fn spawn<F: Feed>(feed: F, after: u64) -> mpsc::UnboundedReceiver<Update<F::Record>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(feed, after, tx));
    rx
}

/// `0.5s`, `10s`.
fn seconds(pause: Duration) -> String {
    let ms = pause.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

async fn drive<F: Feed>(feed: F, mut after: u64, tx: mpsc::UnboundedSender<Update<F::Record>>) {
    let mut pause = FIRST_PAUSE;
    let mut lost = false;
    loop {
        let trouble = match feed.open(after).await {
            Err(error) => error,
            Ok(mut stream) => {
                if lost {
                    lost = false;
                    pause = FIRST_PAUSE;
                    let _ = tx.send(Update::Notice(
                        "pogo: reconnected to the dispatcher".to_string(),
                    ));
                }
                let mut got = false;
                let mut trouble = None;
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(record) => {
                            after = after.max(F::seq(&record));
                            got = true;
                            let last = feed.is_last(&record);
                            if tx.send(Update::Record(record)).is_err() {
                                return;
                            }
                            if last {
                                let _ = tx.send(Update::End);
                                return;
                            }
                        }
                        Err(error) => {
                            trouble = Some(error);
                            break;
                        }
                    }
                }
                match trouble {
                    Some(error) => error,
                    None if !feed.follows() => {
                        let _ = tx.send(Update::End);
                        return;
                    }
                    None => match feed.over().await {
                        Ok(true) if !got => {
                            let _ = tx.send(Update::End);
                            return;
                        }
                        // Records may have come between the stream's end and the answer.
                        Ok(true) => continue,
                        Ok(false) => {
                            // Ended early, as a dispatcher that shuts down ends its streams.
                            if !got {
                                tokio::time::sleep(pause).await;
                                pause = (pause * 2).min(LONGEST_PAUSE);
                            }
                            continue;
                        }
                        Err(error) => error,
                    },
                }
            }
        };
        if !trouble.is_transient() {
            let _ = tx.send(Update::Failed(trouble));
            return;
        }
        let notice = if lost {
            format!(
                "pogo: the dispatcher is still away ({trouble}); trying again in {}",
                seconds(pause)
            )
        } else {
            format!(
                "pogo: lost the dispatcher ({trouble}); trying again in {} (nothing changes on \
                 the dispatcher meanwhile)",
                seconds(pause)
            )
        };
        lost = true;
        if tx.send(Update::Notice(notice)).is_err() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// A job's events.
pub struct Events {
    pub client: Client,
    pub job: String,
    /// End at the first `run_finished` (a session of the job ended) rather than when the job
    /// has ended.
    pub until_finished: bool,
    /// Follow new events (else end with those there are).
    pub follow: bool,
}

impl Feed for Events {
    type Record = EventRecord;

    async fn open(&self, after: u64) -> Result<RecordStream<EventRecord>, ClientError> {
        self.client.events(&self.job, after, self.follow).await
    }

    fn seq(record: &EventRecord) -> u64 {
        record.seq
    }

    fn follows(&self) -> bool {
        self.follow
    }

    fn is_last(&self, record: &EventRecord) -> bool {
        self.until_finished && matches!(record.event, Event::RunFinished { .. })
    }

    async fn over(&self) -> Result<bool, ClientError> {
        Ok(self.client.job(&self.job).await?.summary.state.is_ended())
    }
}

/// A job's output, of one host or of all.
pub struct Output {
    pub client: Client,
    pub job: String,
    pub host: Option<String>,
    /// Follow new output (else end with the lines there are).
    pub follow: bool,
}

impl Feed for Output {
    type Record = OutputRecord;

    async fn open(&self, after: u64) -> Result<RecordStream<OutputRecord>, ClientError> {
        self.client
            .output(&self.job, self.host.as_deref(), after, self.follow)
            .await
    }

    fn seq(record: &OutputRecord) -> u64 {
        record.seq
    }

    fn follows(&self) -> bool {
        self.follow
    }

    async fn over(&self) -> Result<bool, ClientError> {
        let detail = self.client.job(&self.job).await?;
        if detail.summary.state.is_ended() {
            return Ok(true);
        }
        // One host's output is over when its task is, and no retry comes.
        Ok(self.host.as_ref().is_some_and(|host| {
            detail
                .host_states
                .iter()
                .any(|h| &h.host == host && !matches!(h.state.as_str(), "pending" | "running"))
        }))
    }
}

/// How `pogo apply --dispatcher` runs.
pub struct ApplyOptions {
    /// Stream the events as JSON (the summary goes to stderr).
    pub json: bool,
    /// The first Ctrl-C halts with kill.
    pub kill: bool,
    /// Every host in the summary.
    pub full: bool,
    /// Submit, print the job's id, and follow nothing.
    pub detach: bool,
}

/// The view of a job, as of a local run.
enum View<'a> {
    Json(Json<'a>),
    Lines(Lines<'a>),
    Live(Box<Progress>),
    Silent(pogo_views::report::Silent),
}

impl View<'_> {
    fn reporter(&mut self) -> &mut dyn Reporter {
        match self {
            View::Json(json) => json,
            View::Lines(lines) => lines,
            View::Live(progress) => progress.as_mut(),
            View::Silent(silent) => silent,
        }
    }

    fn notice(&self) -> Notice {
        match self {
            View::Live(progress) => progress.notice(),
            _ => Notice::Stderr,
        }
    }

    fn clear(&self) {
        if let View::Live(progress) = self {
            progress.clear();
        }
    }
}

/// How many times a submission is sent when the dispatcher cannot be reached.
const SUBMIT_TRIES: u32 = 5;

/// Submits the job, sending the same request again while the dispatcher cannot be reached:
/// it carries a submission id, so a request whose answer was lost and is sent again gets the
/// job it made, never a second one.
async fn submit(
    client: &Client,
    request: &SubmitJob,
) -> Result<pogo_remote::api::JobSummary, Failure> {
    let mut pause = FIRST_PAUSE;
    let mut tries = 1;
    loop {
        match client.submit(request).await {
            Ok(job) => return Ok(job),
            Err(error) if error.is_transient() && tries < SUBMIT_TRIES => {
                eprintln!(
                    "pogo: {error}; sending the plan again in {}",
                    seconds(pause)
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                tries += 1;
            }
            Err(error) if error.is_transient() => {
                let mut failure = client_failure(error);
                failure.message.push_str(
                    "\nthe dispatcher may have made the job before the connection broke: check \
                     `pogo jobs` before applying the plan again\n",
                );
                return Err(failure);
            }
            Err(error) => return Err(client_failure(error)),
        }
    }
}

/// `pogo apply --dispatcher`: submits the job and follows it to its end (see the command's
/// help for Ctrl-C); the exit code says how it ended, as a local apply's does.
/// `repeat` holds the dispatcher flags to repeat in the commands suggested.
pub fn apply(
    client: &Client,
    request: SubmitJob,
    repeat: &str,
    options: ApplyOptions,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    runtime()?.block_on(async {
        // Installed first: a Ctrl-C while the job is submitted halts it once it is.
        let signals = if options.detach {
            None
        } else {
            Some(Signals::new().map_err(|e| invalid(format!("cannot watch for Ctrl-C: {e}")))?)
        };
        let job = submit(client, &request).await?;
        let id = job.id.as_str();
        match signals {
            None => {
                emit(out, &format!("{id}\n"))?;
                eprintln!(
                    "Job {id} submitted to {}: `{}` on {}\n{}",
                    client.url(),
                    job.command,
                    pogo_views::text::plural(job.hosts, "host"),
                    whats_next(id, repeat)
                );
                Ok(exit::OK)
            }
            Some(signals) => {
                follow_job(client, &request.plan, id, repeat, &options, signals, out).await
            }
        }
    })
}

/// Ctrl-C and SIGTERM.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            Some(()) = self.interrupt.recv() => {}
            Some(()) = self.terminate.recv() => {}
            // Without a signal driver no signal comes.
            else => std::future::pending().await,
        }
    }
}

/// The commands that follow, show and halt a job from elsewhere.
fn whats_next(id: &str, repeat: &str) -> String {
    format!(
        "  follow its output:  pogo log {id} -f{repeat}\n  \
           its state:          pogo status {id}{repeat}\n  \
           halt it:            pogo halt {id} [--kill]{repeat}"
    )
}

/// What happened in the loop of [`follow_job`].
enum Step {
    Update(Option<Update<EventRecord>>),
    Interrupted,
    Waiting(Vec<HostWhy>),
}

/// How often the live view asks the dispatcher why the heads of the job's threads wait.
const WHY_EVERY: Duration = Duration::from_secs(2);

/// Asks the dispatcher why the heads of job `id`'s threads wait, every [`WHY_EVERY`], for
/// the live view; stops when dropped. A failed ask is left out: the event stream says when
/// the dispatcher is out of reach.
struct WhyPoller {
    task: tokio::task::JoinHandle<()>,
    answers: mpsc::Receiver<Vec<HostWhy>>,
}

impl WhyPoller {
    fn spawn(client: &Client, id: &str) -> WhyPoller {
        let (tx, answers) = mpsc::channel(1);
        let (client, id) = (client.clone(), id.to_string());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(WHY_EVERY).await;
                if let Ok(whys) = client.why(&id, &[]).await {
                    if tx.send(whys).await.is_err() {
                        return;
                    }
                }
            }
        });
        WhyPoller { task, answers }
    }

    async fn next(poller: &mut Option<WhyPoller>) -> Vec<HostWhy> {
        match poller {
            Some(poller) => match poller.answers.recv().await {
                Some(whys) => whys,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}

impl Drop for WhyPoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow_job(
    client: &Client,
    plan: &Plan,
    id: &str,
    repeat: &str,
    options: &ApplyOptions,
    mut signals: Signals,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let mut updates = spawn(
        Events {
            client: client.clone(),
            job: id.to_string(),
            until_finished: true,
            follow: true,
        },
        0,
    );
    let quiet = crate::output::get().quiet;
    let live = !options.json
        && !quiet
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    let mut view = if options.json {
        View::Json(Json { out: &mut *out })
    } else if quiet {
        View::Silent(pogo_views::report::Silent)
    } else if live {
        View::Live(Box::new(Progress::new(plan, 0, &[])))
    } else {
        View::Lines(Lines::new(&mut *out, None))
    };
    let notice = view.notice();
    let mut ledger = Ledger::new(&plan.hosts);
    let mut presses = 0;
    let mut poller = live.then(|| WhyPoller::spawn(client, id));
    loop {
        let step = tokio::select! {
            update = updates.recv() => Step::Update(update),
            () = signals.next() => Step::Interrupted,
            whys = WhyPoller::next(&mut poller) => Step::Waiting(whys),
        };
        match step {
            Step::Waiting(whys) => view.reporter().waiting(&whys),
            Step::Update(Some(Update::Record(record))) => {
                ledger.record(&record.event);
                view.reporter().report(&record.event);
            }
            Step::Update(Some(Update::Notice(text))) => notice.say(&text),
            Step::Update(Some(Update::End) | None) => break,
            Step::Update(Some(Update::Failed(error))) => {
                view.clear();
                let mut failure = client_failure(error);
                failure.message.push_str(&format!(
                    "job {id} goes on without this view of it:\n{}\n",
                    whats_next(id, repeat)
                ));
                return Err(failure);
            }
            Step::Interrupted => {
                presses += 1;
                let body = HaltJob { kill: options.kill };
                // A second Ctrl-C detaches at once, even while the halt waits for an answer
                // (a dispatcher out of reach can take the request's whole timeout).
                let halted = if presses > 1 {
                    None
                } else {
                    tokio::select! {
                        answer = client.halt(id, &body) => Some(answer),
                        () = signals.next() => None,
                    }
                };
                let Some(halted) = halted else {
                    view.clear();
                    eprintln!(
                        "pogo: detached from job {id}, which goes on on the dispatcher\n{}",
                        whats_next(id, repeat)
                    );
                    return Ok(exit::STOPPED);
                };
                match halted {
                    Ok(_) if options.kill => notice.say(&format!(
                        "pogo: halting job {id}: no more hosts start, running commands are \
                         killed; Ctrl-C again detaches"
                    )),
                    Ok(_) => notice.say(&format!(
                        "pogo: halting job {id}: no more hosts start, running ones finish; \
                         Ctrl-C again detaches (the job goes on), `pogo halt {id} --kill` \
                         kills them"
                    )),
                    Err(error) => notice.say(&format!(
                        "pogo: cannot halt job {id}: {error}; Ctrl-C again detaches, and \
                         `pogo halt {id}` halts it later"
                    )),
                }
            }
        }
    }
    drop(poller);
    drop(view);
    let result = match ledger.result {
        Some(result) => result,
        None => {
            // The stream ended without the job's end in it: ask how the job stands.
            let detail = client.job(id).await.map_err(client_failure)?;
            match detail.summary.state {
                JobState::Succeeded => RunResult::Succeeded,
                JobState::Failed => RunResult::Failed,
                _ => RunResult::Stopped,
            }
        }
    };
    let mut output = HashMap::new();
    for host in tail_hosts(&ledger, crate::output::get().verbose) {
        match host_output(client, id, &host).await {
            Ok(text) => {
                output.insert(host, text);
            }
            Err(error) => notice.say(&format!("pogo: cannot show {host}'s output: {error}")),
        }
    }
    let text = summary(
        &ledger,
        &SummaryOptions {
            place: Where::Job {
                id,
                output: &output,
            },
            flags: repeat.to_string(),
            full: options.full,
            running: false,
            every_output: crate::output::get().verbose,
        },
    );
    if options.json {
        let _ = std::io::stderr().write_all(format!("\n{text}").as_bytes());
    } else {
        emit(out, &format!("\n{text}"))?;
    }
    Ok(match result {
        RunResult::Succeeded => exit::OK,
        RunResult::Failed => exit::FAILED,
        RunResult::Stopped => exit::STOPPED,
    })
}

/// Everything `host` printed in the job so far, as its log would hold it.
async fn host_output(client: &Client, id: &str, host: &str) -> Result<String, ClientError> {
    let mut stream = client.output(id, Some(host), 0, false).await?;
    let mut format = pogo_views::jobs::LogText::new(false);
    let mut text = String::new();
    while let Some(record) = stream.next().await {
        format.push(&record?, &mut text);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_read_short() {
        assert_eq!(seconds(FIRST_PAUSE), "0.5s");
        assert_eq!(seconds(LONGEST_PAUSE), "10s");
    }
}
