//! Which of the dispatchers on one PostgreSQL database leads: the one holding the lease, a
//! row of `pogo_leader` with an epoch and an expiry timed by the database's clock.
//!
//! A [`Keeper`] thread per dispatcher, on a connection of its own (not the core's, and no
//! advisory lock: a pool or a half-open TCP connection can silently keep or lose one), takes
//! the lease when it has lapsed (the epoch goes up by one), renews it every third of its
//! duration, and gives it back when told to. The leader counts its lease as held until the
//! moment it sent its last successful renewal plus the duration, less a margin
//! ([`Lease::held`]): a leader paused or cut off from the database stops by itself before the
//! database lets another take over.
//!
//! Every transaction of the leader's core begins by reading the lease row `FOR SHARE` with its
//! epoch and an unexpired time (see `PostgresStore::begin`): a leader that lost the lease
//! writes nothing, and a takeover waits for a transaction begun under a valid lease to end.
//! An answer that follows no write goes out only while [`Lease::held`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;
use tokio::sync::watch;

use super::store::postgres::Database;

/// How long a lease lasts unless `--lease` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// What a dispatcher is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It holds the lease of this epoch.
    Leader { epoch: i64 },
    /// Another leads (at this URL, when known), or none does.
    Standby { leader: Option<String> },
}

/// The leader's hold on its lease, shared by the keeper (which renews it) and the store
/// (which checks it).
#[derive(Debug, Clone)]
pub struct Lease {
    epoch: i64,
    until: Arc<Mutex<Option<Instant>>>,
}

impl Lease {
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Whether the lease is surely still this dispatcher's.
    pub fn held(&self) -> bool {
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    fn extend(&self, sent: Instant, duration: Duration) {
        let margin = duration / 5;
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(sent + duration - margin);
    }

    fn lose(&self) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Who this dispatcher is, in the lease row.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// For people: host and process.
    pub name: String,
    /// Where operators and workers reach it (standbys redirect there).
    pub url: String,
}

/// The keeper's controls, held by the dispatcher.
pub struct Keeper {
    role: watch::Receiver<Role>,
    lease: Arc<Mutex<Option<Lease>>>,
    release: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    /// Starts the keeper thread: it connects and tries for the lease at once.
    pub fn start(database: Database, me: Candidate, duration: Duration) -> Keeper {
        let (role_tx, role) = watch::channel(Role::Standby { leader: None });
        let lease = Arc::new(Mutex::new(None));
        let release = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = KeeperThread {
            database,
            me,
            duration,
            role: role_tx,
            lease: lease.clone(),
            release: release.clone(),
            stop: stop.clone(),
            client: None,
        };
        let thread = std::thread::Builder::new()
            .name("pogo-dispatcher-lease".into())
            .spawn(move || worker.run())
            .expect("start the lease thread");
        Keeper {
            role,
            lease,
            release,
            stop,
            thread: Some(thread),
        }
    }

    /// What this dispatcher is now, and its changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The lease of epoch `epoch`, while it is this dispatcher's.
    pub fn lease(&self, epoch: i64) -> Option<Lease> {
        self.lease
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|lease| lease.epoch == epoch)
    }

    /// Gives the lease back (the core stopped): another dispatcher may lead at once.
    pub fn release(&self) {
        self.release.store(true, Ordering::SeqCst);
    }

    /// Gives the lease back and ends the thread.
    pub fn stop(mut self) {
        self.release.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct KeeperThread {
    database: Database,
    me: Candidate,
    duration: Duration,
    role: watch::Sender<Role>,
    lease: Arc<Mutex<Option<Lease>>>,
    release: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    client: Option<Client>,
}

/// After giving the lease back, a dispatcher waits this many lease periods before it tries
/// for it again, so that another takes it.
const STEP_BACK: u32 = 2;

impl KeeperThread {
    fn run(mut self) {
        let mut backoff = Duration::ZERO;
        let mut quiet_until = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.give_back();
                return;
            }
            if self.release.swap(false, Ordering::SeqCst) {
                self.give_back();
                quiet_until = Instant::now() + self.duration * STEP_BACK;
            }
            let step = match self.current() {
                Some(lease) => self.renew(&lease),
                None if Instant::now() >= quiet_until => self.acquire(),
                None => self.look(),
            };
            match step {
                Ok(()) => backoff = Duration::ZERO,
                Err(error) => {
                    // The connection is dropped and made again; a lease held stays held until
                    // its time is up, and is lost then (see `Lease::held`).
                    if self.client.take().is_some() || backoff.is_zero() {
                        tracing::warn!("the lease: {error}");
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), self.period());
                    if let Some(lease) = self.current() {
                        if !lease.held() {
                            self.lost("its lease could not be renewed in time");
                        }
                    }
                    self.sleep(backoff);
                    continue;
                }
            }
            self.sleep(self.period());
        }
    }

    /// How often the lease is renewed, or sought.
    fn period(&self) -> Duration {
        (self.duration / 3).min(Duration::from_secs(1))
    }

    fn sleep(&self, total: Duration) {
        let end = Instant::now() + total;
        while Instant::now() < end {
            if self.stop.load(Ordering::SeqCst) || self.release.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
    }

    fn current(&self) -> Option<Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.is_none() {
            let mut client = self.database.connect().map_err(|e| e.to_string())?;
            // A takeover must not wait behind a paused leader's transaction for ever: the
            // leader's sessions end such transactions themselves (see the store).
            client
                .batch_execute("SET lock_timeout = '2s'; SET statement_timeout = '5s'")
                .map_err(|e| e.to_string())?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just made"))
    }

    fn millis(&self) -> f64 {
        self.duration.as_secs_f64() * 1000.0
    }

    /// Takes the lease if it lapsed (or was never taken).
    fn acquire(&mut self) -> Result<(), String> {
        let (name, url, millis) = (self.me.name.clone(), self.me.url.clone(), self.millis());
        let sent = Instant::now();
        let row = self
            .client()?
            .query_opt(
                "INSERT INTO pogo_leader (id, holder, url, epoch, expires)
                 VALUES (1, $1, $2, 1, now() + $3 * interval '1 millisecond')
                 ON CONFLICT (id) DO UPDATE
                    SET holder = $1, url = $2, epoch = pogo_leader.epoch + 1,
                        expires = now() + $3 * interval '1 millisecond'
                    WHERE pogo_leader.expires < now()
                 RETURNING epoch",
                &[&name, &url, &millis],
            )
            .map_err(|e| e.to_string())?;
        match row {
            Some(row) => {
                let epoch: i64 = row.get(0);
                let lease = Lease {
                    epoch,
                    until: Arc::new(Mutex::new(None)),
                };
                lease.extend(sent, self.duration);
                *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
                tracing::info!("leading (epoch {epoch})");
                self.role.send_replace(Role::Leader { epoch });
                Ok(())
            }
            None => self.look(),
        }
    }

    /// Learns who leads, for redirects.
    fn look(&mut self) -> Result<(), String> {
        let row = self
            .client()?
            .query_opt(
                "SELECT url, expires > now() FROM pogo_leader WHERE id = 1",
                &[],
            )
            .map_err(|e| e.to_string())?;
        let leader = row
            .filter(|row| row.get::<_, bool>(1))
            .map(|row| row.get::<_, String>(0))
            .filter(|url| *url != self.me.url);
        let role = Role::Standby { leader };
        if *self.role.borrow() != role {
            self.role.send_replace(role);
        }
        Ok(())
    }

    fn renew(&mut self, lease: &Lease) -> Result<(), String> {
        let (epoch, millis) = (lease.epoch, self.millis());
        let sent = Instant::now();
        let renewed = self
            .client()?
            .execute(
                "UPDATE pogo_leader SET expires = now() + $2 * interval '1 millisecond'
                 WHERE id = 1 AND epoch = $1 AND expires > now()",
                &[&epoch, &millis],
            )
            .map_err(|e| e.to_string())?;
        if renewed == 1 {
            lease.extend(sent, self.duration);
        } else {
            self.lost("another dispatcher took its lease");
        }
        Ok(())
    }

    fn lost(&mut self, why: &str) {
        if let Some(lease) = self.lease.lock().unwrap_or_else(|e| e.into_inner()).take() {
            lease.lose();
            tracing::info!("stepping down (epoch {}): {why}", lease.epoch);
        }
        self.role.send_replace(Role::Standby { leader: None });
    }

    /// Ends its lease now, if it holds one.
    fn give_back(&mut self) {
        let Some(lease) = self.current() else {
            return;
        };
        self.lost("it stopped leading");
        let epoch = lease.epoch;
        if let Ok(client) = self.client() {
            let _ = client.execute(
                "UPDATE pogo_leader SET expires = now() WHERE id = 1 AND epoch = $1",
                &[&epoch],
            );
        }
    }
}
