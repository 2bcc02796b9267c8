//! Who may call, and what they may spend: users, teams and keys held in memory
//! so that no request waits on the database.
//!
//! The whole directory is loaded at start. Admin changes bump a version row
//! and log which records each version changed (`directory_changes`); the
//! process that made a change lays it over its snapshot at once, and every
//! process polls the version every [`POLL_EVERY`] and catches up by reading
//! just the records the log names (users, teams, keys, models, prompts), or
//! everything when the log cannot say (memberships, deleted users and teams,
//! regenerated keys, budget resets, more than a thousand versions behind).
//! So a change made through one process holds in all of them within that
//! bound, in milliseconds even with 100,000 keys.
//! Spend is counted in memory at the end of each request (so budgets bind at
//! once in this process) and added to the database counters in the same
//! transaction as the request-log batch; with Postgres the counters are re-read
//! on every poll, so other processes' spend counts within the same bound.

pub mod duration;
pub mod records;

use crate::store::directory::{Audit, Change, ChangeKind, Changed, Loaded, SpendKind};
use crate::store::{Store, StoreError};
use arc_swap::ArcSwap;
use records::{KeyRecord, MemberRecord, Role, TeamRecord, UserRecord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each process checks for changes made elsewhere.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// One spend counter: what the database had at the last read or update, plus
/// what this process counted since and has not written yet, and the number of
/// the settle that last set it (see [`Directory::settle`]).
#[derive(Debug, Default)]
pub struct SpendCell(Mutex<(f64, f64, u64)>);

impl SpendCell {
    pub fn total(&self) -> f64 {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0 + g.1
    }

    /// Adds `x`; returns the total before and after.
    fn add_pending(&self, x: f64) -> (f64, f64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let before = g.0 + g.1;
        g.1 += x;
        (before, before + x)
    }

    fn settle(&self, delta: f64, db: f64, settle_no: u64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = db;
        g.1 = (g.1 - delta).max(0.0);
        g.2 = g.2.max(settle_no);
    }

    /// A value read from the database by a read that began after settle
    /// number `read_after` had happened. A read that began before this
    /// cell's last settle may predate the batch that settle wrote, so its
    /// value is older than the one the cell holds and is not taken.
    fn set_db(&self, db: f64, read_after: u64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.2 <= read_after {
            g.0 = db;
        }
    }
}

#[derive(Debug)]
pub struct UserEntry {
    pub record: UserRecord,
    pub spend: Arc<SpendCell>,
    /// (team_id, role) of each membership.
    pub teams: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct TeamEntry {
    pub record: TeamRecord,
    pub spend: Arc<SpendCell>,
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub record: KeyRecord,
    pub spend: Arc<SpendCell>,
    pub user: Option<Arc<UserEntry>>,
    pub team: Option<Arc<TeamEntry>>,
}

/// The directory at one version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    pub keys: HashMap<String, Arc<KeyEntry>>,
    pub key_aliases: HashMap<String, String>,
    pub users: HashMap<String, Arc<UserEntry>>,
    pub users_by_email: HashMap<String, String>,
    pub teams: HashMap<String, Arc<TeamEntry>>,
    pub members: Vec<MemberRecord>,
    /// Deployments added through the API, secrets sealed.
    pub models: Arc<Vec<crate::config::DbModel>>,
    /// Managed prompts by id, each with its versions in order.
    pub prompts: HashMap<String, Vec<Arc<records::PromptRecord>>>,
}

impl Snapshot {
    /// A key by its secret or its hash (`token`).
    pub fn key(&self, key_or_token: &str) -> Option<&Arc<KeyEntry>> {
        self.keys
            .get(key_or_token)
            .or_else(|| self.keys.get(&crate::auth::hash_key(key_or_token)))
    }

    pub fn user_by_email(&self, email: &str) -> Option<&Arc<UserEntry>> {
        self.users_by_email
            .get(&email.to_ascii_lowercase())
            .and_then(|id| self.users.get(id))
    }

    pub fn team_role(&self, team_id: &str, user_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.team_id == team_id && m.user_id == user_id)
            .map(|m| m.role.as_str())
    }
}

/// Proxy-wide budget (`litellm_settings.max_budget`, `budget_duration`).
#[derive(Debug, Clone, Default)]
pub struct ProxyBudget {
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
}

pub struct Directory {
    store: Store,
    snap: ArcSwap<Snapshot>,
    cells: Mutex<HashMap<(SpendKind, String), Arc<SpendCell>>>,
    pub proxy_spend: Arc<SpendCell>,
    /// How many batches of spend have been settled; reads of spend from the
    /// database note it when they begin (see [`SpendCell::set_db`]).
    settles: AtomicU64,
    pub proxy_budget: ProxyBudget,
    reload_lock: tokio::sync::Mutex<()>,
    /// The version of the snapshot in use, for tasks that follow changes.
    version_tx: tokio::sync::watch::Sender<i64>,
    /// How many times everything was read (changes are mostly patched in).
    full_reads: AtomicU64,
}

/// Why a presented key is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRejected {
    Unknown,
    Blocked(String),
    Expired(String),
}

impl Directory {
    pub async fn load(
        store: Store,
        proxy_budget: ProxyBudget,
    ) -> Result<Arc<Directory>, StoreError> {
        let dir = Arc::new(Directory {
            store,
            snap: ArcSwap::from_pointee(Snapshot::default()),
            cells: Mutex::new(HashMap::new()),
            proxy_spend: Arc::new(SpendCell::default()),
            settles: AtomicU64::new(0),
            proxy_budget,
            reload_lock: tokio::sync::Mutex::new(()),
            version_tx: tokio::sync::watch::Sender::new(0),
            full_reads: AtomicU64::new(0),
        });
        dir.reload().await?;
        Ok(dir)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.load_full()
    }

    /// Wakes on every reload (the value is the directory's version).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.version_tx.subscribe()
    }

    fn cell(&self, kind: SpendKind, id: &str) -> Arc<SpendCell> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.entry((kind, id.to_string())).or_default().clone()
    }

    /// Reads everything again and swaps the new snapshot in.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _guard = self.reload_lock.lock().await;
        self.full_reads.fetch_add(1, Ordering::Relaxed);
        let read_after = self.settles.load(Ordering::Acquire);
        let loaded = self.store.load_directory().await?;
        let snap = self.build(loaded, read_after);
        let version = snap.version;
        self.snap.store(Arc::new(snap));
        self.version_tx.send_replace(version);
        Ok(())
    }

    fn build(&self, l: Loaded, read_after: u64) -> Snapshot {
        self.proxy_spend.set_db(l.proxy_spend, read_after);
        for (id, spend) in &l.key_model_spend {
            self.cell(SpendKind::KeyModel, id)
                .set_db(*spend, read_after);
        }
        let mut user_teams: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for m in &l.members {
            user_teams
                .entry(m.user_id.as_str())
                .or_default()
                .push((m.team_id.clone(), m.role.clone()));
        }
        let mut users = HashMap::with_capacity(l.users.len());
        let mut users_by_email = HashMap::new();
        for u in l.users {
            let spend = self.cell(SpendKind::User, &u.user_id);
            spend.set_db(u.spend, read_after);
            if let Some(e) = &u.user_email {
                users_by_email.insert(e.to_ascii_lowercase(), u.user_id.clone());
            }
            let teams = user_teams.remove(u.user_id.as_str()).unwrap_or_default();
            users.insert(
                u.user_id.clone(),
                Arc::new(UserEntry {
                    record: u,
                    spend,
                    teams,
                }),
            );
        }
        let mut teams = HashMap::with_capacity(l.teams.len());
        for t in l.teams {
            let spend = self.cell(SpendKind::Team, &t.team_id);
            spend.set_db(t.spend, read_after);
            teams.insert(t.team_id.clone(), Arc::new(TeamEntry { record: t, spend }));
        }
        let mut prompts: HashMap<String, Vec<Arc<records::PromptRecord>>> = HashMap::new();
        for p in l.prompts {
            prompts
                .entry(p.prompt_id.clone())
                .or_default()
                .push(Arc::new(p));
        }
        let mut keys = HashMap::with_capacity(l.keys.len());
        let mut key_aliases = HashMap::new();
        for k in l.keys {
            let spend = self.cell(SpendKind::Key, &k.token);
            spend.set_db(k.spend, read_after);
            if let Some(a) = &k.key_alias {
                key_aliases.insert(a.clone(), k.token.clone());
            }
            let user = k.user_id.as_ref().and_then(|u| users.get(u)).cloned();
            let team = k.team_id.as_ref().and_then(|t| teams.get(t)).cloned();
            keys.insert(
                k.token.clone(),
                Arc::new(KeyEntry {
                    record: k,
                    spend,
                    user,
                    team,
                }),
            );
        }
        Snapshot {
            version: l.version,
            keys,
            key_aliases,
            users,
            users_by_email,
            teams,
            members: l.members,
            models: Arc::new(l.models),
            prompts,
        }
    }

    /// Resolves a key by the SHA-256 (hex) of its secret. No I/O.
    pub fn resolve(&self, token: &str, now_ms: i64) -> Result<Arc<KeyEntry>, KeyRejected> {
        let snap = self.snap.load();
        let Some(k) = snap.keys.get(token) else {
            return Err(KeyRejected::Unknown);
        };
        if k.record.blocked {
            return Err(KeyRejected::Blocked(format!(
                "Authentication Error: key {} is blocked. Ask an admin to unblock it.",
                k.record.key_name
            )));
        }
        if let Some(t) = &k.team {
            if t.record.blocked {
                return Err(KeyRejected::Blocked(format!(
                    "Authentication Error: team {} of this key is blocked.",
                    t.record.team_id
                )));
            }
        }
        if let Some(u) = &k.user {
            if u.record.blocked {
                return Err(KeyRejected::Blocked(format!(
                    "Authentication Error: user {} of this key is blocked.",
                    u.record.user_id
                )));
            }
        }
        if let Some(exp) = k.record.expires_at {
            if exp <= now_ms {
                return Err(KeyRejected::Expired(format!(
                    "Authentication Error: key {} expired at {}.",
                    k.record.key_name,
                    records::iso(exp).as_str().unwrap_or_default()
                )));
            }
        }
        Ok(Arc::clone(k))
    }

    /// Applies admin changes (one transaction, audited), then brings the
    /// snapshot up to date: by laying the changes over it when nothing else
    /// changed the directory in between (the store's version is exactly one
    /// ahead) and every change is one [`Directory::patch`] knows, else by
    /// reading everything again. With 100,000 keys a full read takes seconds;
    /// a patch takes milliseconds.
    pub async fn apply(&self, changes: &[Change<'_>], audit: &[Audit]) -> Result<(), StoreError> {
        let version = self.store.apply_changes(changes, audit).await?;
        {
            let _guard = self.reload_lock.lock().await;
            let started = std::time::Instant::now();
            let current = self.snap.load_full();
            if version == current.version + 1 && changes.iter().all(patchable) {
                let snap = self.patch(&current, changes, version);
                self.snap.store(Arc::new(snap));
                self.version_tx.send_replace(version);
                crate::metrics::directory_updated("patched", started.elapsed());
                return Ok(());
            }
        }
        self.catch_up(version).await
    }

    /// Brings the snapshot up to the store's `version`: from the change log
    /// when it holds every version in between and each change is one
    /// [`Directory::patch`] takes (the records they name are read again, by
    /// id), else by reading everything. So another process's change costs a
    /// few point reads here, not a full read of 100,000 keys.
    async fn catch_up(&self, version: i64) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        {
            let _guard = self.reload_lock.lock().await;
            let current = self.snap.load_full();
            if current.version >= version {
                return Ok(());
            }
            if let Some(snap) = self.patched_from_log(&current, version).await? {
                self.snap.store(Arc::new(snap));
                self.version_tx.send_replace(version);
                crate::metrics::directory_updated("log", started.elapsed());
                return Ok(());
            }
        }
        self.reload().await?;
        crate::metrics::directory_updated("full", started.elapsed());
        Ok(())
    }

    /// `current` brought to `version` through the change log, or `None`
    /// when only a full read can.
    async fn patched_from_log(
        &self,
        current: &Snapshot,
        version: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        let Some(log) = self.store.changes_since(current.version, version).await? else {
            return Ok(None);
        };
        if log.iter().any(|(_, kind, _)| *kind == ChangeKind::Other) {
            return Ok(None);
        }
        // Each record once, as the store holds it now, in the order first
        // changed (a user before the keys made for it).
        let mut seen = std::collections::HashSet::new();
        let mut read = Vec::new();
        for (_, kind, id) in log {
            if seen.insert((kind, id.clone())) {
                let record = self.store.changed_record(kind, &id).await?;
                read.push((kind, id, record));
            }
        }
        let mut changes = Vec::new();
        for (kind, id, record) in &read {
            match (kind, record) {
                (_, Some(Changed::User(u))) => changes.push(Change::PutUser(u)),
                (_, Some(Changed::Team(t))) => changes.push(Change::PutTeam(t)),
                (_, Some(Changed::Key(k))) => changes.push(Change::PutKey(k)),
                (_, Some(Changed::Model(m))) => changes.push(Change::PutModel(m)),
                (_, Some(Changed::Prompt(versions))) => {
                    changes.push(Change::DeletePrompt(id));
                    changes.extend(versions.iter().map(Change::PutPrompt));
                }
                (ChangeKind::Key, None) => changes.push(Change::DeleteKey(id)),
                (ChangeKind::Model, None) => changes.push(Change::DeleteModel(id)),
                (ChangeKind::Prompt, None) => changes.push(Change::DeletePrompt(id)),
                // A user or team gone took its keys and memberships along.
                _ => return Ok(None),
            }
        }
        Ok(Some(self.patch(current, &changes, version)))
    }

    /// `current` with `changes` laid over it, at `version`: the same snapshot
    /// a full read would build (see [`patchable`] for the changes it takes).
    fn patch(&self, current: &Snapshot, changes: &[Change<'_>], version: i64) -> Snapshot {
        let read_after = self.settles.load(Ordering::Acquire);
        let mut s = Snapshot {
            version,
            keys: current.keys.clone(),
            key_aliases: current.key_aliases.clone(),
            users: current.users.clone(),
            users_by_email: current.users_by_email.clone(),
            teams: current.teams.clone(),
            members: current.members.clone(),
            models: Arc::clone(&current.models),
            prompts: current.prompts.clone(),
        };
        // A new entity's counter starts from what was written; a known one's
        // is already current (settled as spend is written).
        let fresh = |cell: &Arc<SpendCell>, known: bool, spend: f64| {
            if !known {
                cell.set_db(spend, read_after);
            }
        };
        for c in changes {
            match c {
                Change::PutUser(u) => {
                    let before = s.users.get(&u.user_id).cloned();
                    let spend = self.cell(SpendKind::User, &u.user_id);
                    fresh(&spend, before.is_some(), u.spend);
                    if let Some(old) = before.as_ref().and_then(|b| b.record.user_email.as_ref()) {
                        unindex(&mut s.users_by_email, &old.to_ascii_lowercase(), &u.user_id);
                    }
                    if let Some(e) = &u.user_email {
                        s.users_by_email
                            .insert(e.to_ascii_lowercase(), u.user_id.clone());
                    }
                    let teams = match &before {
                        Some(b) => b.teams.clone(),
                        None => s
                            .members
                            .iter()
                            .filter(|m| m.user_id == u.user_id)
                            .map(|m| (m.team_id.clone(), m.role.clone()))
                            .collect(),
                    };
                    let entry = Arc::new(UserEntry {
                        record: (*u).clone(),
                        spend,
                        teams,
                    });
                    s.users.insert(u.user_id.clone(), Arc::clone(&entry));
                    relink(
                        &mut s.keys,
                        |k| k.record.user_id.as_deref() == Some(&u.user_id),
                        |k| k.user = Some(Arc::clone(&entry)),
                    );
                }
                Change::PutTeam(t) => {
                    let known = s.teams.contains_key(&t.team_id);
                    let spend = self.cell(SpendKind::Team, &t.team_id);
                    fresh(&spend, known, t.spend);
                    let entry = Arc::new(TeamEntry {
                        record: (*t).clone(),
                        spend,
                    });
                    s.teams.insert(t.team_id.clone(), Arc::clone(&entry));
                    relink(
                        &mut s.keys,
                        |k| k.record.team_id.as_deref() == Some(&t.team_id),
                        |k| k.team = Some(Arc::clone(&entry)),
                    );
                }
                Change::PutKey(k) => {
                    let before = s.keys.get(&k.token).cloned();
                    let spend = self.cell(SpendKind::Key, &k.token);
                    fresh(&spend, before.is_some(), k.spend);
                    if let Some(old) = before.as_ref().and_then(|b| b.record.key_alias.as_ref()) {
                        unindex(&mut s.key_aliases, old, &k.token);
                    }
                    if let Some(a) = &k.key_alias {
                        s.key_aliases.insert(a.clone(), k.token.clone());
                    }
                    let user = k.user_id.as_ref().and_then(|u| s.users.get(u)).cloned();
                    let team = k.team_id.as_ref().and_then(|t| s.teams.get(t)).cloned();
                    s.keys.insert(
                        k.token.clone(),
                        Arc::new(KeyEntry {
                            record: (*k).clone(),
                            spend,
                            user,
                            team,
                        }),
                    );
                }
                Change::DeleteKey(token) => {
                    if let Some(old) = s.keys.remove(*token) {
                        if let Some(a) = &old.record.key_alias {
                            unindex(&mut s.key_aliases, a, token);
                        }
                    }
                }
                Change::PutModel(m) => {
                    let mut models = (*s.models).clone();
                    match models.iter_mut().find(|x| x.model_id == m.model_id) {
                        Some(x) => *x = (*m).clone(),
                        None => models.push((*m).clone()),
                    }
                    s.models = Arc::new(models);
                }
                Change::DeleteModel(id) => {
                    let mut models = (*s.models).clone();
                    models.retain(|x| x.model_id != *id);
                    s.models = Arc::new(models);
                }
                Change::PutPrompt(p) => {
                    let versions = s.prompts.entry(p.prompt_id.clone()).or_default();
                    versions.retain(|v| v.version != p.version);
                    versions.push(Arc::new((*p).clone()));
                    versions.sort_by_key(|v| v.version);
                }
                Change::DeletePrompt(id) => {
                    s.prompts.remove(*id);
                }
                // Not patchable: `apply` reads everything for these.
                Change::DeleteUser(_)
                | Change::DeleteTeam(_)
                | Change::PutMember(_)
                | Change::DeleteMember { .. }
                | Change::RenameKey { .. } => {}
            }
        }
        s
    }

    /// A key's spend on one model (counted only for models in its `model_max_budget`).
    pub fn key_model_spend(&self, key: &KeyEntry, model: &str) -> Arc<SpendCell> {
        self.cell(
            SpendKind::KeyModel,
            &crate::store::directory::key_model_id(&key.record.token, model),
        )
    }

    /// Counts a request's spend at once, before its log is written. `model`
    /// is the model group that answered.
    pub fn record_spend(&self, key: Option<&KeyEntry>, model: Option<&str>, amount: f64) {
        if amount <= 0.0 || !amount.is_finite() {
            return;
        }
        let (before, after) = self.proxy_spend.add_pending(amount);
        crate::alerts::budget(
            "proxy",
            "(all keys)",
            before,
            after,
            self.proxy_budget.max_budget,
            None,
        );
        if let Some(k) = key {
            if let Some(m) = model.filter(|m| k.record.settings.model_max_budget.contains_key(*m)) {
                self.key_model_spend(k, m).add_pending(amount);
            }
            let (before, after) = k.spend.add_pending(amount);
            if let Some(soft) = k.record.settings.soft_budget {
                if before < soft && after >= soft {
                    tracing::warn!(
                        key = %k.record.key_name,
                        key_alias = k.record.key_alias.as_deref().unwrap_or(""),
                        user_id = k.record.user_id.as_deref().unwrap_or(""),
                        spend = after,
                        soft_budget = soft,
                        "key crossed its soft budget"
                    );
                }
            }
            let name = k.record.key_alias.as_deref().unwrap_or(&k.record.key_name);
            crate::alerts::budget(
                "key",
                name,
                before,
                after,
                k.record.settings.max_budget,
                k.record.settings.soft_budget,
            );
            if let Some(u) = &k.user {
                let (before, after) = u.spend.add_pending(amount);
                crate::alerts::budget(
                    "user",
                    &u.record.user_id,
                    before,
                    after,
                    u.record.settings.max_budget,
                    None,
                );
            }
            if let Some(t) = &k.team {
                let (before, after) = t.spend.add_pending(amount);
                let name = t.record.team_alias.as_deref().unwrap_or(&t.record.team_id);
                crate::alerts::budget(
                    "team",
                    name,
                    before,
                    after,
                    t.record.settings.max_budget,
                    None,
                );
            }
        }
    }

    /// The counters a batch of logs updated: their database values now include it.
    pub fn settle(&self, updated: &[(SpendKind, String, f64, f64)]) {
        let settle_no = self.settles.fetch_add(1, Ordering::AcqRel) + 1;
        for (kind, id, delta, new) in updated {
            let cell = if *kind == SpendKind::Proxy {
                Arc::clone(&self.proxy_spend)
            } else {
                self.cell(*kind, id)
            };
            cell.settle(*delta, *new, settle_no);
        }
    }

    /// Checks for changes made by other processes every [`POLL_EVERY`] until `stop`.
    pub fn spawn_poller(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let dir = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                if let Err(e) = dir.poll_once().await {
                    tracing::warn!(error = %e, "directory refresh failed; serving the cached copy");
                }
            }
        })
    }

    async fn poll_once(&self) -> Result<(), StoreError> {
        let proxy_period = self
            .proxy_budget
            .budget_duration
            .as_deref()
            .and_then(|d| duration::parse(d).ok());
        let reset = self
            .store
            .reset_due_budgets(crate::logs::now_ms(), proxy_period)
            .await?;
        if reset > 0 {
            tracing::info!(counters = reset, "budget periods ended: spend reset");
        }
        let version = self.store.directory_version().await?;
        if version != self.snap.load().version {
            tracing::debug!(version, "directory changed; catching up");
            return self.catch_up(version).await;
        }
        if matches!(self.store, Store::Postgres(_)) {
            let read_after = self.settles.load(Ordering::Acquire);
            for (kind, id, spend) in self.store.spend_counters().await? {
                if kind == SpendKind::Proxy {
                    self.proxy_spend.set_db(spend, read_after);
                } else {
                    self.cell(kind, &id).set_db(spend, read_after);
                }
            }
        }
        Ok(())
    }
}

/// Changes [`Directory::patch`] lays over a snapshot. Deletes of users and
/// teams (which take their keys and memberships with them), memberships and
/// regenerated keys are read again in full instead.
fn patchable(c: &Change<'_>) -> bool {
    matches!(
        c,
        Change::PutUser(_)
            | Change::PutTeam(_)
            | Change::PutKey(_)
            | Change::DeleteKey(_)
            | Change::PutModel(_)
            | Change::DeleteModel(_)
            | Change::PutPrompt(_)
            | Change::DeletePrompt(_)
    )
}

/// Rebuilds the keys `which` picks with `set` applied (a key holds its user
/// and team, so a changed user or team is linked into each of its keys).
fn relink(
    keys: &mut HashMap<String, Arc<KeyEntry>>,
    which: impl Fn(&KeyEntry) -> bool,
    set: impl Fn(&mut KeyEntry),
) {
    for k in keys.values_mut().filter(|k| which(k)) {
        let mut e = KeyEntry::clone(k);
        set(&mut e);
        *k = Arc::new(e);
    }
}

/// Removes `name` from an index (aliases, emails) when it still points at `owner`.
fn unindex(index: &mut HashMap<String, String>, name: &str, owner: &str) {
    if index.get(name).is_some_and(|o| o == owner) {
        index.remove(name);
    }
}

impl KeyEntry {
    /// Whether the key's spend has reached its `soft_budget` (it keeps working).
    pub fn soft_budget_exceeded(&self) -> bool {
        self.record
            .settings
            .soft_budget
            .is_some_and(|s| self.spend.total() >= s)
    }
}

/// The role a user has, or none for keys without a user.
pub fn role_of(key: &KeyEntry) -> Option<Role> {
    key.user.as_ref().map(|u| u.record.user_role)
}

/// Whether a model list allows `model`: it names it, names an access group
/// the model is in, or is a wildcard (`*`, `all-proxy-models`).
fn list_allows(list: &[String], model: &str, access_groups: &[&str]) -> bool {
    list.iter().any(|m| {
        m == model || m == "*" || m == "all-proxy-models" || access_groups.contains(&m.as_str())
    })
}

/// Whether a key may call `model` (a model group name; `access_groups` are
/// that group's `model_info.access_groups`). Every non-empty list on the way
/// must allow it: the key's, then its team's (team keys) or its user's.
pub fn model_allowed(key: &KeyEntry, model: &str, access_groups: &[&str]) -> Result<(), String> {
    let check = |list: &[String], whose: &str| {
        if list.is_empty() || list_allows(list, model, access_groups) {
            Ok(())
        } else {
            Err(format!(
                "{whose} is not allowed to call model={model}. Allowed models: {}",
                list.join(", ")
            ))
        }
    };
    check(
        &key.record.settings.models,
        &format!("Key {}", key.record.key_name),
    )?;
    if let Some(t) = &key.team {
        check(
            &t.record.settings.models,
            &format!("Team {}", t.record.team_id),
        )?;
    } else if let Some(u) = &key.user {
        check(
            &u.record.settings.models,
            &format!("User {}", u.record.user_id),
        )?;
    }
    Ok(())
}

/// The first budget a call to `model` would exceed, in words, or none.
pub fn budget_exceeded(dir: &Directory, key: Option<&KeyEntry>, model: &str) -> Option<String> {
    let over = |spend: f64, max: Option<f64>| max.filter(|m| spend >= *m).map(|m| (spend, m));
    if let Some((s, m)) = over(dir.proxy_spend.total(), dir.proxy_budget.max_budget) {
        return Some(format!(
            "Budget has been exceeded: the proxy's budget is spent. Spend: {s}, max_budget: {m}"
        ));
    }
    let k = key?;
    if let Some((s, m)) = over(k.spend.total(), k.record.settings.max_budget) {
        return Some(format!(
            "Budget has been exceeded for key {}: spend {s}, max_budget {m}",
            k.record.key_name
        ));
    }
    if let Some(b) = k.record.settings.model_budget(model) {
        if let Some((s, m)) = over(dir.key_model_spend(k, model).total(), Some(b.limit)) {
            return Some(format!(
                "Budget has been exceeded for key {} on model={model}: spend {s}, model_max_budget {m}{}",
                k.record.key_name,
                b.period
                    .map(|p| format!(" per {p}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(u) = &k.user {
        if let Some((s, m)) = over(u.spend.total(), u.record.settings.max_budget) {
            return Some(format!(
                "Budget has been exceeded for user {}: spend {s}, max_budget {m}",
                u.record.user_id
            ));
        }
    }
    if let Some(t) = &k.team {
        if let Some((s, m)) = over(t.spend.total(), t.record.settings.max_budget) {
            return Some(format!(
                "Budget has been exceeded for team {}: spend {s}, max_budget {m}",
                t.record.team_id
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use records::Settings;
    use std::collections::BTreeMap;

    /// Everything a snapshot says, in a stable order.
    fn shape(s: &Snapshot) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("version".into(), s.version.to_string());
        for (t, k) in &s.keys {
            let user = k.user.as_ref().map(|u| format!("{:?}", u.record));
            let team = k.team.as_ref().map(|t| format!("{:?}", t.record));
            out.insert(
                format!("key {t}"),
                format!("{:?} {user:?} {team:?} {}", k.record, k.spend.total()),
            );
        }
        for (id, u) in &s.users {
            let mut teams = u.teams.clone();
            teams.sort();
            out.insert(
                format!("user {id}"),
                format!("{:?} {teams:?} {}", u.record, u.spend.total()),
            );
        }
        for (id, t) in &s.teams {
            out.insert(
                format!("team {id}"),
                format!("{:?} {}", t.record, t.spend.total()),
            );
        }
        out.insert(
            "aliases".into(),
            format!("{:?}", s.key_aliases.iter().collect::<BTreeMap<_, _>>()),
        );
        out.insert(
            "emails".into(),
            format!("{:?}", s.users_by_email.iter().collect::<BTreeMap<_, _>>()),
        );
        out.insert("models".into(), format!("{:?}", s.models));
        for (id, p) in &s.prompts {
            out.insert(format!("prompt {id}"), format!("{p:?}"));
        }
        out
    }

    fn user(id: &str, email: &str, budget: Option<f64>) -> UserRecord {
        UserRecord {
            user_id: id.into(),
            user_email: Some(email.into()),
            user_alias: None,
            user_role: Role::InternalUser,
            blocked: false,
            spend: 0.0,
            budget_reset_at: None,
            settings: Settings {
                max_budget: budget,
                ..Default::default()
            },
            created_at: 1,
            updated_at: 1,
        }
    }

    fn team(id: &str, blocked: bool) -> TeamRecord {
        TeamRecord {
            team_id: id.into(),
            team_alias: Some(format!("alias of {id}")),
            blocked,
            spend: 0.0,
            budget_reset_at: None,
            settings: Settings::default(),
            created_at: 1,
            updated_at: 1,
        }
    }

    fn key(token: &str, alias: &str, user: &str, team: &str) -> KeyRecord {
        KeyRecord {
            token: token.into(),
            key_name: format!("sk-...{token}"),
            key_alias: Some(alias.into()),
            user_id: Some(user.into()),
            team_id: Some(team.into()),
            blocked: false,
            expires_at: None,
            spend: 0.0,
            budget_reset_at: None,
            settings: Settings::default(),
            created_by: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    /// After each batch of changes, the patched snapshot is the one a full
    /// read of the store builds.
    #[tokio::test]
    async fn a_patch_builds_what_a_full_read_would() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/d.db", dir.path().display());
        let store = Store::connect(&url).await.expect("the store");
        let d = Directory::load(store.clone(), ProxyBudget::default())
            .await
            .expect("the directory");
        let reread = || async {
            let other = Directory::load(store.clone(), ProxyBudget::default())
                .await
                .expect("a second directory");
            shape(&other.snapshot())
        };
        let u1 = user("u1", "Ada@example.com", Some(5.0));
        let t1 = team("t1", false);
        let k1 = key("k1", "first", "u1", "t1");
        let k2 = key("k2", "second", "u1", "t1");
        let batches: Vec<Vec<Change<'_>>> = vec![
            vec![Change::PutUser(&u1), Change::PutTeam(&t1)],
            vec![Change::PutKey(&k1), Change::PutKey(&k2)],
        ];
        let full_reads = || d.full_reads.load(Ordering::Relaxed);
        let reads_at_start = full_reads();
        for b in &batches {
            d.apply(b, &[]).await.expect("applied");
            assert_eq!(shape(&d.snapshot()), reread().await);
        }
        // A user's new email and budget, a blocked team, a key's new alias,
        // a deleted key: each seen through the keys that hold them.
        let u1b = user("u1", "ada.l@example.com", Some(9.0));
        let t1b = team("t1", true);
        let mut k1b = key("k1", "renamed", "u1", "t1");
        k1b.blocked = true;
        for b in [
            vec![Change::PutUser(&u1b)],
            vec![Change::PutTeam(&t1b)],
            vec![Change::PutKey(&k1b), Change::DeleteKey("k2")],
        ] {
            let before = d.snapshot().version;
            d.apply(&b, &[]).await.expect("applied");
            assert_eq!(d.snapshot().version, before + 1);
            assert_eq!(shape(&d.snapshot()), reread().await);
        }
        // All of it patched in, none of it read again.
        assert_eq!(full_reads(), reads_at_start);
        let snap = d.snapshot();
        let k = snap.keys.get("k1").expect("k1");
        assert_eq!(
            k.user.as_ref().map(|u| u.record.settings.max_budget),
            Some(Some(9.0))
        );
        assert!(k.team.as_ref().is_some_and(|t| t.record.blocked));
        assert_eq!(
            snap.key_aliases.get("renamed").map(String::as_str),
            Some("k1")
        );
        assert!(!snap.key_aliases.contains_key("first") && !snap.keys.contains_key("k2"));
        assert!(snap.user_by_email("ADA.L@example.com").is_some());
        assert!(snap.user_by_email("ada@example.com").is_none());
        // A change made elsewhere in between: caught up from the change
        // log (the named records read again), nothing lost, no full read.
        let t2 = team("t2", false);
        store
            .apply_changes(&[Change::PutTeam(&t2)], &[])
            .await
            .expect("another process's change");
        let u2 = user("u2", "bo@example.com", None);
        d.apply(&[Change::PutUser(&u2)], &[])
            .await
            .expect("applied");
        assert_eq!(full_reads(), reads_at_start);
        let snap = d.snapshot();
        assert!(snap.teams.contains_key("t2") && snap.users.contains_key("u2"));
        assert_eq!(shape(&snap), reread().await);

        // Another process follows by polling: keys, users, models and
        // prompts changed here are patched in there from the log.
        let other = Directory::load(store.clone(), ProxyBudget::default())
            .await
            .expect("another process's directory");
        let other_reads = || other.full_reads.load(Ordering::Relaxed);
        let other_at_start = other_reads();
        let k3 = key("k3", "third", "u2", "t2");
        let u2b = user("u2", "bo.b@example.com", Some(3.0));
        let t2b = team("t2", true);
        d.apply(&[Change::PutKey(&k3)], &[]).await.expect("applied");
        d.apply(&[Change::PutUser(&u2b), Change::PutTeam(&t2b)], &[])
            .await
            .expect("applied");
        d.apply(&[Change::DeleteKey("k1")], &[])
            .await
            .expect("applied");
        other.poll_once().await.expect("polled");
        assert_eq!(other_reads(), other_at_start);
        assert_eq!(other.snapshot().version, d.snapshot().version);
        assert_eq!(shape(&other.snapshot()), reread().await);
        let theirs = other.snapshot();
        let k = theirs.keys.get("k3").expect("k3 seen by the other process");
        assert!(k.team.as_ref().is_some_and(|t| t.record.blocked));
        assert!(!theirs.keys.contains_key("k1") && !theirs.key_aliases.contains_key("renamed"));
        // A membership is not logged as a record: read in full.
        let m = MemberRecord {
            team_id: "t2".into(),
            user_id: "u2".into(),
            role: "user".into(),
        };
        d.apply(&[Change::PutMember(&m)], &[])
            .await
            .expect("applied");
        other.poll_once().await.expect("polled");
        assert_eq!(other_reads(), other_at_start + 1);
        assert_eq!(shape(&other.snapshot()), reread().await);
    }
}
