//! The real server, over real HTTP, on a real temp dir.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use meshward_audit_proto::Action;
use meshward_sink::auth;
use meshward_sink::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};

#[test]
fn signed_ingest_is_durable_and_the_export_rehashes_to_the_checkpoint_with_plain_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path());
    let a = srv.addr;

    // One event as an object, then a batch as an array.
    let one = event("acme", "inst-1", 1, Action::Allow, &[]);
    let r = deliver(a, "msg_single", now(), &serde_json::to_vec(&one).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 1);
    let batch: Vec<_> = (2..=40).map(|s| event("acme", "inst-1", s, Action::Redact, &[("EMAIL", 1)])).collect();
    let r = deliver_events(a, "msg_batch", &batch);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 39);
    assert_eq!(r.json()["first_index"], 1);

    let (_, size, root) = fresh_checkpoint(a);
    assert_eq!(size, 40);

    let r = get(a, &format!("/v1/entries?start=0&end={size}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines = jsonl_lines(&r.body);
    assert_eq!(lines.len(), 40);
    // The auditor's computation: SHA-256 only, straight from the lines.
    assert_eq!(plain_root(&lines), root, "export must re-hash to the signed root");
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(v["index"], i as u64);
        assert_eq!(v["event"]["seq"], i as u64 + 1);
        assert_eq!(v["event"]["tenant"], "acme");
    }
    // Sub-ranges are exact slices; end is capped at the tree size.
    let r = get(a, "/v1/entries?start=10&end=12");
    assert_eq!(jsonl_lines(&r.body), lines[10..12].to_vec());
    let r = get(a, "/v1/entries?start=39&end=1000");
    assert_eq!(jsonl_lines(&r.body), lines[39..].to_vec());
    assert_eq!(get(a, "/v1/entries?start=41").status, 400);

    // Small segments (16 KiB) forced several files; all were read back above.
    let segs = std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert!(segs >= 2, "expected segment rollover, got {segs} segment(s)");
    srv.stop();
}

#[test]
fn forged_stale_replayed_and_malformed_deliveries_are_rejected_with_problems() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path());
    let a = srv.addr;
    let body = serde_json::to_vec(&[event("acme", "i", 1, Action::Allow, &[])]).unwrap();

    let ok = deliver(a, "msg_1", now(), &body);
    assert_eq!(ok.status, 200, "{}", ok.text());

    let check = |r: Resp, status: u16, kind: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let p = r.json();
        assert_eq!(p["type"], format!("urn:meshward:problem:{kind}"));
        assert_eq!(p["status"], status);
        assert_eq!(p["instance"], "/v1/events");
        assert!(p["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(p["title"].is_string() && p["detail"].is_string());
    };
    // Replay of an accepted id.
    check(deliver(a, "msg_1", now(), &body), 409, "duplicate-delivery");
    // Forged: signed with another secret.
    let ts = now();
    let forged = meshward_audit_proto::webhook::Secret::from_bytes(b"not the secret").sign("msg_2", ts, &body);
    let r = request(
        a,
        "POST",
        "/v1/events",
        &[("webhook-id", "msg_2".into()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", forged)],
        &body,
    );
    check(r, 401, "bad-signature");
    // Body altered after signing.
    let sig = secret().sign("msg_3", ts, &body);
    let mut altered = body.clone();
    altered[10] ^= 1;
    let r = request(
        a,
        "POST",
        "/v1/events",
        &[("webhook-id", "msg_3".into()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig)],
        &altered,
    );
    check(r, 401, "bad-signature");
    // Stale and future timestamps, correctly signed.
    check(deliver(a, "msg_4", now() - 301, &body), 401, "stale-timestamp");
    check(deliver(a, "msg_5", now() + 301, &body), 401, "stale-timestamp");
    // Missing headers.
    check(request(a, "POST", "/v1/events", &[], &body), 400, "missing-webhook-headers");
    // Authentic but not a decision event.
    check(deliver(a, "msg_6", now(), br#"{"hello":"world"}"#), 422, "invalid-event");
    check(deliver(a, "msg_7", now(), b"[]"), 422, "invalid-event");
    // Too large (limit 1 MiB in tests).
    check(deliver(a, "msg_8", now(), &vec![b' '; (1 << 20) + 10]), 413, "body-too-large");
    // An id rejected for its body can be used again once fixed (it was never stored).
    assert_eq!(deliver(a, "msg_6", now(), &body).status, 200);

    // Nothing rejected reached the log.
    let (_, size, _) = fresh_checkpoint(a);
    assert_eq!(size, 2);
    let m = get(a, "/metrics").text();
    for (reason, n) in [
        ("duplicate", 1),
        ("bad_signature", 2),
        ("stale_timestamp", 2),
        ("missing_headers", 1),
        ("invalid_body", 2),
        ("too_large", 1),
    ] {
        let line = format!("meshward_sink_requests_rejected_total{{reason=\"{reason}\"}} {n}");
        assert!(m.contains(&line), "missing {line:?} in\n{m}");
    }
    assert!(m.contains("meshward_sink_events_ingested_total 2"), "{m}");
    assert!(m.contains("meshward_sink_tree_size 2"));
    assert!(m.contains("meshward_sink_fsync_seconds_count "));
    // Unknown endpoints and methods are problems too.
    assert_eq!(get(a, "/nope").header("content-type"), Some("application/problem+json"));
    assert_eq!(request(a, "DELETE", "/checkpoint", &[], b"").status, 405);
    srv.stop();
}

#[test]
fn reader_keys_are_scoped_to_tenant_and_capability() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path());
    let a = srv.addr;
    let acme: Vec<_> = (1..=6)
        .map(|s| event("acme", "ia", s, if s % 2 == 0 { Action::Block } else { Action::Allow }, &[("EMAIL", s % 3)]))
        .collect();
    let globex: Vec<_> = (1..=4).map(|s| event("globex", "ig", s, Action::Allow, &[("IBAN", 1)])).collect();
    assert_eq!(deliver_events(a, "m1", &acme).status, 200);
    assert_eq!(deliver_events(a, "m2", &globex).status, 200);

    let key =
        |tenant: &str, caps: &str| auth::create_key(dir.path(), tenant, auth::parse_caps(caps).unwrap()).unwrap().0;
    let acme_read = key("acme", "read");
    let acme_export = key("acme", "export");
    let all_read = key("*", "read");

    // Tenant A's key sees A only, whatever it asks for.
    let r = get_auth(a, "/v1/events", &acme_read);
    assert_eq!(r.status, 200, "{}", r.text());
    let entries = r.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().all(|e| e["event"]["tenant"] == "acme"));
    let r = get_auth(a, "/v1/events?tenant=globex", &acme_read);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "urn:meshward:problem:tenant-forbidden");
    // No key, unknown key, wrong capability.
    let r = get(a, "/v1/events");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(get_auth(a, "/v1/events", "mwk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").status, 401);
    assert_eq!(get_auth(a, "/v1/export", &acme_read).status, 403);
    assert_eq!(get_auth(a, "/v1/events", &acme_export).status, 403);

    // Filters.
    let count = |q: &str, tok: &str| {
        let r = get_auth(a, &format!("/v1/events?{q}"), tok);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        r.json()["entries"].as_array().unwrap().len()
    };
    assert_eq!(count("action=block", &acme_read), 3);
    assert_eq!(count("class=EMAIL", &acme_read), 4, "counts of 0 do not match");
    assert_eq!(count("class=IBAN", &acme_read), 0);
    assert_eq!(count("request_id=req-acme-ia-5", &acme_read), 1);
    assert_eq!(count("request_id=req-globex-ig-1", &acme_read), 0);
    assert_eq!(count("since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z", &acme_read), 6);
    assert_eq!(count(&format!("since={}", now() + 3600), &acme_read), 0);
    assert_eq!(count("tenant=globex", &all_read), 4);
    assert_eq!(count("", &all_read), 10);
    assert_eq!(get_auth(a, "/v1/events?action=explode", &acme_read).status, 400);
    assert_eq!(get_auth(a, "/v1/events?bogus=1", &acme_read).status, 400);
    // Pagination.
    let r = get_auth(a, "/v1/events?limit=4", &acme_read).json();
    assert_eq!(r["entries"].as_array().unwrap().len(), 4);
    let next = r["next_after"].as_u64().unwrap();
    let r2 = get_auth(a, &format!("/v1/events?limit=4&after={next}"), &acme_read).json();
    assert_eq!(r2["entries"].as_array().unwrap().len(), 2);
    assert!(r2["next_after"].is_null());

    // Export: JSONL of A's leaves only, each an exact leaf of the log.
    let r = get_auth(a, "/v1/export", &acme_export);
    assert_eq!(r.status, 200);
    let lines = jsonl_lines(&r.body);
    assert_eq!(lines.len(), 6);
    let all = get(a, "/v1/entries").body;
    let all_lines = jsonl_lines(&all);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap();
        assert_eq!(v["event"]["tenant"], "acme");
        assert_eq!(all_lines[v["index"].as_u64().unwrap() as usize], *l);
    }
    srv.stop();
}

#[test]
fn served_proofs_verify_against_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path());
    let a = srv.addr;
    let evs: Vec<_> = (1..=5).map(|s| event("t", "i", s, Action::Allow, &[])).collect();
    assert_eq!(deliver_events(a, "first", &evs).status, 200);
    let (_, size1, root1) = fresh_checkpoint(a);
    let evs: Vec<_> = (6..=13).map(|s| event("t", "i", s, Action::Allow, &[])).collect();
    assert_eq!(deliver_events(a, "second", &evs).status, 200);
    let (_, size2, root2) = fresh_checkpoint(a);
    assert_eq!((size1, size2), (5, 13));

    let hashes = |v: &serde_json::Value| -> Vec<Hash> {
        v["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
            .collect()
    };
    let lines_body = get(a, "/v1/entries").body;
    let lines = jsonl_lines(&lines_body);
    for i in 0..size2 {
        let p = get(a, &format!("/v1/proof/inclusion?index={i}&size={size2}")).json();
        let leaf = leaf_hash(lines[i as usize]);
        assert_eq!(p["leaf_hash"], B64.encode(leaf));
        let proof = hashes(&p);
        assert!(verify_inclusion(i, size2, &leaf, &proof, &root2), "entry {i}");
        let mut bad = proof.clone();
        bad[0][0] ^= 1;
        assert!(!verify_inclusion(i, size2, &leaf, &bad, &root2));
    }
    let c = get(a, &format!("/v1/proof/consistency?from={size1}&to={size2}")).json();
    assert_eq!((c["from"].as_u64(), c["to"].as_u64()), (Some(size1), Some(size2)));
    assert!(verify_consistency(size1, size2, &root1, &root2, &hashes(&c)));
    assert!(!verify_consistency(size1, size2, &root2, &root2, &hashes(&c)));
    // Bad parameters are problems.
    for q in [
        "/v1/proof/inclusion?index=13&size=13",
        "/v1/proof/inclusion?index=0&size=99",
        "/v1/proof/inclusion?index=x&size=1",
        "/v1/proof/consistency?from=0&to=3",
        "/v1/proof/consistency?from=4&to=3",
    ] {
        let r = get(a, q);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    srv.stop();
}

#[test]
fn restart_keeps_the_log_the_checkpoint_and_the_dedupe_set() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path());
    let evs: Vec<_> = (1..=3).map(|s| event("t", "i", s, Action::Allow, &[])).collect();
    assert_eq!(deliver_events(srv.addr, "before-restart", &evs).status, 200);
    let (note1, size1, _) = fresh_checkpoint(srv.addr);
    srv.stop();

    let srv = start(dir.path());
    let a = srv.addr;
    assert_eq!(get(a, "/checkpoint").text(), note1, "the persisted checkpoint is served after restart");
    // The same delivery again, re-signed with a fresh timestamp: still a duplicate.
    assert_eq!(deliver_events(a, "before-restart", &evs).status, 409);
    let evs: Vec<_> = (4..=5).map(|s| event("t", "i", s, Action::Allow, &[])).collect();
    assert_eq!(deliver_events(a, "after-restart", &evs).status, 200);
    let (_, size2, root2) = fresh_checkpoint(a);
    assert_eq!((size1, size2), (3, 5));
    let body = get(a, "/v1/entries").body;
    assert_eq!(plain_root(&jsonl_lines(&body)), root2);
    srv.stop();

    // A second sink on the same directory is refused.
    let srv = start(dir.path());
    let err = meshward_sink::server::start(config(dir.path()), "127.0.0.1:0".parse().unwrap()).err().unwrap();
    assert!(err.to_string().contains("LOCK"), "{err}");
    srv.stop();
}

#[test]
fn sequence_gaps_per_instance_are_detected_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path());
    let a = srv.addr;
    let evs: Vec<_> = [1, 2, 5, 6, 9].iter().map(|&s| event("t", "inst-A", s, Action::Allow, &[])).collect();
    assert_eq!(deliver_events(a, "g1", &evs).status, 200);
    assert_eq!(deliver_events(a, "g2", &[event("t", "inst-B", 1, Action::Allow, &[])]).status, 200);
    let g = get(a, "/v1/gaps").json();
    assert_eq!(g["total_missing"], 4);
    let inst = &g["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 1, "only instances with gaps by default: {g}");
    assert_eq!(inst[0]["instance_id"], "inst-A");
    assert_eq!(inst[0]["missing"], serde_json::json!([[3, 4], [7, 8]]));
    // A late retry fills part of a gap.
    assert_eq!(deliver_events(a, "g3", &[event("t", "inst-A", 3, Action::Allow, &[])]).status, 200);
    let g = get(a, "/v1/gaps?instance_id=inst-A").json();
    assert_eq!(g["instances"][0]["missing"], serde_json::json!([[4, 4], [7, 8]]));
    assert_eq!(get(a, "/v1/gaps?all=true").json()["instances"].as_array().unwrap().len(), 2);
    assert!(get(a, "/metrics").text().contains("meshward_sink_sequence_gaps_missing 3"));
    srv.stop();
    // Rebuilt from the log after a restart.
    let srv = start(dir.path());
    assert_eq!(get(srv.addr, "/v1/gaps").json()["total_missing"], 3);
    srv.stop();
}

#[test]
fn entries_can_require_an_audit_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.entries_auth = true;
    let srv = meshward_sink::server::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(get(srv.addr, "/v1/entries").status, 401);
    let read = auth::create_key(dir.path(), "*", vec!["read".into()]).unwrap().0;
    assert_eq!(get_auth(srv.addr, "/v1/entries", &read).status, 403);
    let audit = auth::create_key(dir.path(), "*", vec!["audit".into()]).unwrap().0;
    assert_eq!(get_auth(srv.addr, "/v1/entries", &audit).status, 200);
    srv.stop();
}
