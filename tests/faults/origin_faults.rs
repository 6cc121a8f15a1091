//! A slow, hung, resetting or dead origin: the edge answers with a gateway error (`502`,
//! `504`) or, where the object allows `stale-if-error` and was not purged, the stale copy; a
//! purge still applies while the origin is down, and the purged object is never the answer
//! (not even as the stale fallback). Objects that were not purged are still hits.

use std::time::Duration;

use crate::check::assert_no_purged_but_served;
use crate::cluster::Cluster;
use crate::origin::Mode;

/// The origin read timeout of these cases: a hung origin costs this per request.
const READ_TIMEOUT_MS: u64 = 2_000;

/// Caches `purged` and `kept`, breaks the origin with `mode`, purges `purged`: the purge is
/// applied on every edge, `kept` is still a hit, and `purged` is answered with one of
/// `statuses`; then the origin heals and `purged` is the new content.
fn purge_while_the_origin_is(mode: Mode, statuses: &[u16]) {
    let Some(c) = Cluster::builder().origin_read_timeout_ms(READ_TIMEOUT_MS).build() else { return };
    let (purged, kept) = ("/origin/purged".to_owned(), "/origin/kept".to_owned());
    c.warm(&[purged.clone(), kept.clone()]);
    c.origin.set_mode(mode);
    let asked = c.origin.requests();
    let purge = c.purge_urls(std::slice::from_ref(&purged));
    c.wait_done(purge.batch);
    for i in 0..c.edges.len() {
        let reply = c.get(i, &kept);
        assert!(reply.status == 200 && reply.is_hit(), "{mode:?}: {kept} is still a hit: {reply:?}");
        let reply = c.get(i, &purged);
        assert!(statuses.contains(&reply.status), "{mode:?}: {purged} answered {} {}", reply.status, reply.text());
        assert!(!reply.is_hit(), "{mode:?}: a purged object is not a hit: {reply:?}");
    }
    assert_eq!(assert_no_purged_but_served(&c, std::slice::from_ref(&purge)), 2, "{mode:?}");
    if mode != Mode::Dead {
        assert!(c.origin.requests() > asked, "{mode:?}: the edges asked the faulty origin");
    }
    c.origin.set_mode(Mode::Normal);
    for i in 0..c.edges.len() {
        // The first request after healing may still meet a pooled connection the fault broke.
        c.wait_for("the healed origin's answer", || c.get(i, &purged).status == 200);
        assert!(c.get(i, &purged).version() > Some(purge.old), "new content after healing");
    }
}

#[test]
fn a_slow_origin_delays_misses_and_a_purge_still_applies() {
    // Slower than usual but within the read timeout: the new content, late.
    purge_while_the_origin_is(Mode::Slow(Duration::from_millis(1_200)), &[200]);
}

#[test]
fn a_hung_origin_gives_504_and_a_purge_still_applies() {
    purge_while_the_origin_is(Mode::Hung, &[504]);
}

#[test]
fn a_resetting_origin_gives_502_and_a_purge_still_applies() {
    purge_while_the_origin_is(Mode::Reset, &[502]);
}

#[test]
fn a_dead_origin_gives_502_and_a_purge_still_applies() {
    purge_while_the_origin_is(Mode::Dead, &[502]);
}

#[test]
fn stale_if_error_serves_what_was_not_purged_and_never_what_was() {
    let Some(c) = Cluster::builder().origin_read_timeout_ms(READ_TIMEOUT_MS).build() else { return };
    let (kept, purged) = ("/stale/kept".to_owned(), "/stale/purged".to_owned());
    c.warm(&[kept.clone(), purged.clone()]);
    // Both are fresh for one second; past that the edge must ask the origin.
    std::thread::sleep(Duration::from_millis(2_100));
    c.origin.set_mode(Mode::Dead);
    let purge = c.purge_urls(std::slice::from_ref(&purged));
    c.wait_done(purge.batch);
    for i in 0..c.edges.len() {
        let reply = c.get(i, &kept);
        assert_eq!(reply.status, 200, "{kept}: the stale copy: {reply:?}");
        assert!(reply.cache_status().contains("stale"), "{kept} is marked stale: {}", reply.cache_status());
        let reply = c.get(i, &purged);
        assert_eq!(reply.status, 502, "{purged}: no stale fallback after a purge: {reply:?}");
    }
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2);
}
