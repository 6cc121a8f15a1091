//! What the host accepts back from a policy. Anything else is an `invalid-return` failure and
//! the built-in default is used instead.

use edgepurge_sdk::{CacheDecision, PolicyInfo, PurgePlan, QueueState, Scope, Task, TaskKind, UrlParts};

/// Most actions one task may expand to.
pub const MAX_PLAN_ACTIONS: usize = 1024;
/// Longest URL, prefix, tag, host or cache key a policy may return.
pub const MAX_STRING: usize = 8192;
/// Most extra tags one response may get.
pub const MAX_TAGS: usize = 64;

/// One queue per task, each an index of the given queues, healthy unless none is.
pub fn check_selection(chosen: &[u32], tasks: &[Task], queues: &[QueueState]) -> Result<(), String> {
    if chosen.len() != tasks.len() {
        return Err(format!("returned {} queue indices for {} tasks", chosen.len(), tasks.len()));
    }
    let any_healthy = queues.iter().any(|q| q.healthy);
    for (i, index) in chosen.iter().enumerate() {
        match queues.iter().find(|q| q.index == *index) {
            None => return Err(format!("task #{i}: queue {index} does not exist")),
            Some(q) if !q.healthy && any_healthy => return Err(format!("task #{i}: queue {index} is unhealthy")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// A plan whose scopes are non-empty, bounded, and stay within the task's host unless the task
/// purges everything — a policy must not widen one tenant's purge to another's objects.
pub fn check_plan(plan: &PurgePlan, task: &Task) -> Result<(), String> {
    if plan.actions.len() > MAX_PLAN_ACTIONS {
        return Err(format!("{} actions (at most {MAX_PLAN_ACTIONS})", plan.actions.len()));
    }
    let everything = task.kind == TaskKind::Everything;
    for action in &plan.actions {
        let within_host = |h: &str| everything || (!task.host.is_empty() && h.eq_ignore_ascii_case(&task.host));
        match &action.scope {
            Scope::Everything if !everything => {
                return Err("`everything` scope for a task that is not `everything`".into())
            }
            Scope::Everything => {}
            Scope::Url(s) | Scope::Prefix(s) | Scope::Tag(s) | Scope::Host(s)
                if s.is_empty() || s.len() > MAX_STRING =>
            {
                return Err(format!("scope {:?} is empty or longer than {MAX_STRING} bytes", action.scope));
            }
            Scope::Tag(_) => {}
            Scope::Host(h) if !within_host(h) => {
                return Err(format!("host scope `{h}` is outside the task's host `{}`", task.host))
            }
            Scope::Host(_) => {}
            Scope::Url(u) | Scope::Prefix(u) => match UrlParts::parse(u) {
                Some(parts) if within_host(parts.host) => {}
                Some(parts) => {
                    return Err(format!(
                        "scope `{u}` is on host `{}`, outside the task's host `{}`",
                        parts.host, task.host
                    ))
                }
                None => return Err(format!("scope `{u}` is not an absolute URL")),
            },
        }
    }
    Ok(())
}

/// Bounded tags.
pub fn check_decision(d: &CacheDecision) -> Result<(), String> {
    if d.tags.len() > MAX_TAGS {
        return Err(format!("{} tags (at most {MAX_TAGS})", d.tags.len()));
    }
    match d.tags.iter().find(|t| t.is_empty() || t.len() > 256 || t.chars().any(char::is_control)) {
        Some(t) => Err(format!("tag {t:?} is empty, longer than 256 bytes or has control characters")),
        None => Ok(()),
    }
}

/// A bounded key without control characters.
pub fn check_key(key: &Option<String>) -> Result<(), String> {
    match key {
        Some(k) if k.is_empty() || k.len() > MAX_STRING || k.chars().any(char::is_control) => {
            Err(format!("cache key is empty, longer than {MAX_STRING} bytes or has control characters"))
        }
        _ => Ok(()),
    }
}

/// A non-empty, short name and version.
pub fn check_info(info: &PolicyInfo) -> Result<(), String> {
    if info.name.is_empty() || info.name.len() > 64 || info.version.len() > 64 {
        return Err(format!(
            "name {:?} / version {:?}: the name must be 1–64 bytes, the version at most 64",
            info.name, info.version
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_sdk::{PurgeAction, PurgeMode};

    fn plan(scope: Scope) -> PurgePlan {
        PurgePlan { actions: vec![PurgeAction { scope, mode: PurgeMode::Hard }] }
    }

    #[test]
    fn plans_stay_within_the_host() {
        let task =
            Task { kind: TaskKind::Url, host: "a.com".into(), target: "https://a.com/x".into(), ..Default::default() };
        assert!(check_plan(&plan(Scope::Url("https://a.com/y".into())), &task).is_ok());
        assert!(check_plan(&plan(Scope::Prefix("https://b.com/".into())), &task).is_err());
        assert!(check_plan(&plan(Scope::Host("b.com".into())), &task).is_err());
        assert!(check_plan(&plan(Scope::Everything), &task).is_err());
        assert!(check_plan(&plan(Scope::Tag("t".into())), &task).is_ok());
        let all = Task { kind: TaskKind::Everything, ..Default::default() };
        assert!(check_plan(&plan(Scope::Everything), &all).is_ok());
    }

    fn arb_task() -> impl proptest::strategy::Strategy<Value = Task> {
        use proptest::prelude::*;
        let kinds = prop_oneof![
            Just(TaskKind::Url),
            Just(TaskKind::Prefix),
            Just(TaskKind::Tag),
            Just(TaskKind::Host),
            Just(TaskKind::Everything),
            Just(TaskKind::Warm)
        ];
        (kinds, "[a-z]{1,8}\\.(com|net)", "[a-z0-9/._-]{0,20}", any::<bool>()).prop_map(|(kind, host, path, soft)| {
            let target = match kind {
                TaskKind::Tag => format!("tag-{path}"),
                TaskKind::Host => host.clone(),
                TaskKind::Everything => String::new(),
                _ => format!("https://{host}/{path}"),
            };
            let host = if kind == TaskKind::Everything { String::new() } else { host };
            Task { kind, target, host, soft, ..Default::default() }
        })
    }

    proptest::proptest! {
        /// The built-in scoping of a well-formed task always passes the host's own checks, so
        /// the default policy is never refused.
        #[test]
        fn default_plans_are_always_accepted(task in arb_task()) {
            let plan = edgepurge_sdk::defaults::scope_purge(&task);
            proptest::prop_assert_eq!(check_plan(&plan, &task), Ok(()));
        }

        /// A URL or prefix scope on any other host is always refused.
        #[test]
        fn other_hosts_are_always_refused(task in arb_task(), other in "[a-z]{1,8}\\.org", path in "[a-z/]{0,10}") {
            proptest::prop_assume!(task.kind != TaskKind::Everything);
            let scope = Scope::Prefix(format!("https://{other}/{path}"));
            proptest::prop_assert!(check_plan(&plan(scope), &task).is_err());
        }
    }

    #[test]
    fn selections_name_healthy_queues() {
        let tasks = vec![Task::default(); 2];
        let queues = vec![
            QueueState { index: 0, healthy: true, ..Default::default() },
            QueueState { index: 1, ..Default::default() },
        ];
        assert!(check_selection(&[0, 0], &tasks, &queues).is_ok());
        assert!(check_selection(&[0], &tasks, &queues).is_err());
        assert!(check_selection(&[0, 1], &tasks, &queues).is_err());
        assert!(check_selection(&[0, 7], &tasks, &queues).is_err());
    }
}
