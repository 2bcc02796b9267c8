//! `GET /spend/budgets`: every budget the caller may see, in one list — the
//! gateway's own, each team's, user's and key's — with what has been spent
//! against it, how often it resets and when next. Sorted by the share used,
//! fullest first, and paged; `kind` and `search` narrow it. The dashboard's
//! "nearest their limits" is the first ten rows of the same list. Read from
//! the in-memory directory, like the keys themselves: no database read.

use super::*;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde::Deserialize;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/spend/budgets", get(list))
}

/// What a budget belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Proxy,
    Team,
    User,
    Key,
}

impl Owner {
    fn parse(s: &str) -> Option<Owner> {
        Some(match s {
            "proxy" => Owner::Proxy,
            "team" => Owner::Team,
            "user" => Owner::User,
            "key" => Owner::Key,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Owner::Proxy => "proxy",
            Owner::Team => "team",
            Owner::User => "user",
            Owner::Key => "key",
        }
    }
}

/// One budget and its use.
pub struct Budget {
    pub owner: Owner,
    pub id: String,
    pub name: String,
    pub spend: f64,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub duration: Option<String>,
    pub reset_at: Option<i64>,
}

impl Budget {
    /// The share of the limit spent (of the soft budget when there is no hard one).
    pub fn used(&self) -> f64 {
        match self.max_budget.or(self.soft_budget) {
            Some(max) if max > 0.0 => self.spend / max,
            Some(_) => f64::INFINITY,
            None => 0.0,
        }
    }

    pub fn view(&self) -> Value {
        serde_json::json!({
            "kind": self.owner.as_str(),
            "id": self.id,
            "name": self.name,
            "spend": self.spend,
            "max_budget": self.max_budget,
            "soft_budget": self.soft_budget,
            "budget_duration": self.duration,
            "budget_reset_at": crate::directory::records::iso_opt(self.reset_at),
            // A limit of zero is full however little was spent.
            "used": Some(self.used()).filter(|u| u.is_finite()).unwrap_or(1.0),
        })
    }
}

/// Every budget (a `max_budget` or `soft_budget`) the caller may read, fullest first.
pub fn budgets(state: &crate::state::AppState, auth: &AuthContext, snap: &Snapshot) -> Vec<Budget> {
    let mut out = Vec::new();
    let mut consider = |owner, id: &str, name: String, spend: f64, s: &Settings, reset_at| {
        if s.max_budget.is_some() || s.soft_budget.is_some() {
            out.push(Budget {
                owner,
                id: id.to_string(),
                name,
                spend,
                max_budget: s.max_budget,
                soft_budget: s.soft_budget,
                duration: s.budget_duration.clone(),
                reset_at,
            });
        }
    };
    for k in snap
        .keys
        .values()
        .filter(|k| may_touch_key(auth, snap, k, Access::Read))
    {
        let r = &k.record;
        consider(
            Owner::Key,
            &r.token,
            r.key_alias.clone().unwrap_or_else(|| r.key_name.clone()),
            k.spend.total(),
            &r.settings,
            r.budget_reset_at,
        );
    }
    for u in snap.users.values() {
        let r = &u.record;
        if auth.reads_all() || auth.user_id() == Some(r.user_id.as_str()) {
            consider(
                Owner::User,
                &r.user_id,
                r.user_email.clone().unwrap_or_else(|| r.user_id.clone()),
                u.spend.total(),
                &r.settings,
                r.budget_reset_at,
            );
        }
    }
    if auth.reads_all() {
        for t in snap.teams.values() {
            let r = &t.record;
            consider(
                Owner::Team,
                &r.team_id,
                r.team_alias.clone().unwrap_or_else(|| r.team_id.clone()),
                t.spend.total(),
                &r.settings,
                r.budget_reset_at,
            );
        }
        let proxy = &state.directory.proxy_budget;
        if let Some(max) = proxy.max_budget {
            out.push(Budget {
                owner: Owner::Proxy,
                id: "proxy".into(),
                name: "Whole gateway".into(),
                spend: state.directory.proxy_spend.total(),
                max_budget: Some(max),
                soft_budget: None,
                duration: proxy.budget_duration.clone(),
                reset_at: None,
            });
        }
    }
    out.sort_by(|a, b| {
        b.used()
            .total_cmp(&a.used())
            .then_with(|| b.spend.total_cmp(&a.spend))
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

#[derive(Deserialize)]
struct ListQuery {
    /// proxy, team, user or key.
    kind: Option<String>,
    /// A case-insensitive part of the owner's name or id.
    search: Option<String>,
    page: Option<u64>,
    page_size: Option<u64>,
}

async fn list(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let kind = match q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(Owner::parse(k).ok_or_else(|| {
            ApiError::bad_request(format!("kind {k:?} is not one of proxy, team, user, key"))
                .param("kind")
        })?),
    };
    let search = search_term(q.search.as_deref());
    let snap = state.directory.snapshot();
    let all: Vec<Budget> = budgets(&state, &auth, &snap)
        .into_iter()
        .filter(|b| kind.is_none_or(|k| b.owner == k))
        .filter(|b| {
            search.as_deref().is_none_or(|s| {
                b.name.to_lowercase().contains(s) || b.id.to_lowercase().contains(s)
            })
        })
        .collect();
    Ok(paged(
        "budgets",
        &all,
        page(q.page, q.page_size, 50),
        Budget::view,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(spend: f64, max: Option<f64>, soft: Option<f64>) -> Budget {
        Budget {
            owner: Owner::Key,
            id: "k".into(),
            name: "k".into(),
            spend,
            max_budget: max,
            soft_budget: soft,
            duration: None,
            reset_at: None,
        }
    }

    #[test]
    fn use_is_against_the_hard_limit_else_the_soft_one() {
        assert_eq!(b(5.0, Some(10.0), Some(1.0)).used(), 0.5);
        assert_eq!(b(5.0, None, Some(10.0)).used(), 0.5);
        assert_eq!(b(5.0, Some(0.0), None).view()["used"], 1.0);
        assert_eq!(Owner::parse("team"), Some(Owner::Team));
        assert_eq!(Owner::parse("teams"), None);
    }
}
