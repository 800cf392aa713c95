use super::*;
use serde_json::json;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron_job(spec: serde_json::Value, status: serde_json::Value) -> CronJob {
    let mut v = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default", "uid": "cj-uid",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedule": "*/5 * * * *", "timeZone": "UTC",
                 "jobTemplate": {"metadata": {"labels": {"app": "nightly"}},
                     "spec": {"template": {"spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": status,
    });
    for (k, val) in spec.as_object().unwrap() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

/// A Job of the CronJob named for `minute` (of 2026-01-01, UTC), started then, in
/// `state` ("" running, "Complete", "Failed").
fn job(cj: &CronJob, minute: u32, state: &str) -> Arc<Job> {
    let t = at(&format!("2026-01-01T00:{minute:02}:00Z"));
    let mut job = job_for(cj, &t.to_zoned(TimeZone::UTC));
    job.metadata.uid = Some(format!("job-{minute}"));
    let conditions = if state.is_empty() {
        json!([])
    } else {
        json!([{"type": state, "status": "True"}])
    };
    job.status = Some(
        serde_json::from_value(json!({
            "startTime": format!("2026-01-01T00:{minute:02}:01Z"),
            "completionTime": if state == "Complete" { json!(format!("2026-01-01T00:{minute:02}:30Z")) } else { json!(null) },
            "conditions": conditions,
        }))
        .unwrap(),
    );
    Arc::new(job)
}

#[test]
fn a_due_time_makes_one_job_named_for_it() {
    let cj = cron_job(json!({}), json!({}));
    let d = reconcile(&cj, &[], at("2026-01-01T00:07:10Z"));
    let job = d.create.expect("a job");
    // 00:05 is the last time due.
    let minutes = at("2026-01-01T00:05:00Z").as_second() / 60;
    assert_eq!(
        job.metadata.name.as_deref(),
        Some(format!("nightly-{minutes}").as_str())
    );
    assert_eq!(
        job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
        "2026-01-01T00:05:00+00:00"
    );
    assert_eq!(job.metadata.labels.unwrap()["app"], "nightly");
    assert_eq!(
        d.status.last_schedule_time,
        Some(Time(at("2026-01-01T00:05:00Z")))
    );
    assert_eq!(d.status.active.unwrap().len(), 1);
    // The next look: at 00:10.
    assert_eq!(d.requeue_after, Some(Duration::from_secs(170)));
}

#[test]
fn nothing_runs_before_the_first_time_or_twice_for_one_time() {
    let cj = cron_job(json!({}), json!({}));
    let d = reconcile(&cj, &[], at("2026-01-01T00:04:59Z"));
    assert!(d.create.is_none());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(1)));
    // The Job exists though the status was never written (a kill between them).
    let j = job(&cj, 5, "");
    let d = reconcile(&cj, &[j], at("2026-01-01T00:07:00Z"));
    assert!(d.create.is_none());
    assert_eq!(
        d.status.last_schedule_time,
        Some(Time(at("2026-01-01T00:05:00Z")))
    );
}

#[test]
fn forbid_waits_and_replace_ends_the_running_job() {
    let status = json!({"lastScheduleTime": "2026-01-01T00:05:00Z"});
    let forbid = cron_job(json!({"concurrencyPolicy": "Forbid"}), status.clone());
    let running = job(&forbid, 5, "");
    let d = reconcile(
        &forbid,
        std::slice::from_ref(&running),
        at("2026-01-01T00:10:05Z"),
    );
    assert!(d.create.is_none());
    assert_eq!(d.events[0].1, "JobAlreadyActive");
    let replace = cron_job(json!({"concurrencyPolicy": "Replace"}), status.clone());
    let running = job(&replace, 5, "");
    let d = reconcile(
        &replace,
        std::slice::from_ref(&running),
        at("2026-01-01T00:10:05Z"),
    );
    assert_eq!(d.delete, [running.metadata.name.clone().unwrap()]);
    assert!(d.create.is_some());
    assert_eq!(d.status.active.unwrap().len(), 1);
    let allow = cron_job(json!({}), status);
    let running = job(&allow, 5, "");
    let d = reconcile(&allow, &[running], at("2026-01-01T00:10:05Z"));
    assert!(d.delete.is_empty() && d.create.is_some());
    assert_eq!(d.status.active.unwrap().len(), 2);
}

#[test]
fn finished_jobs_are_seen_and_the_history_kept_to_its_limits() {
    let cj = cron_job(
        json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
        json!({"lastScheduleTime": "2026-01-01T00:25:00Z",
               "active": [{"kind": "Job", "name": "nightly-29453785", "uid": "job-25"}]}),
    );
    let jobs: Vec<Arc<Job>> = vec![
        job(&cj, 5, "Complete"),
        job(&cj, 10, "Failed"),
        job(&cj, 15, "Complete"),
        job(&cj, 20, "Failed"),
        job(&cj, 25, "Complete"),
    ];
    let d = reconcile(&cj, &jobs, at("2026-01-01T00:26:00Z"));
    let name = |m: u32| jobs[(m / 5 - 1) as usize].metadata.name.clone().unwrap();
    assert_eq!(d.delete, [name(5), name(10)]);
    assert!(d.status.active.is_none());
    assert_eq!(
        d.status.last_successful_time,
        Some(Time(at("2026-01-01T00:25:30Z")))
    );
    assert_eq!(
        d.events,
        [(
            "Normal",
            "SawCompletedJob",
            format!("Saw completed job: {}, condition: Complete", name(25))
        )]
    );
}

#[test]
fn missed_times_run_once_and_only_within_the_starting_deadline() {
    // Down for an hour: one Job, for the last time missed.
    let cj = cron_job(
        json!({}),
        json!({"lastScheduleTime": "2026-01-01T00:05:00Z"}),
    );
    let d = reconcile(&cj, &[], at("2026-01-01T01:02:00Z"));
    assert_eq!(
        d.status.last_schedule_time,
        Some(Time(at("2026-01-01T01:00:00Z")))
    );
    // With a deadline of 60 s the 01:00 run is too late at 01:02.
    let late = cron_job(
        json!({"startingDeadlineSeconds": 60}),
        json!({"lastScheduleTime": "2026-01-01T00:05:00Z"}),
    );
    let d = reconcile(&late, &[], at("2026-01-01T01:02:00Z"));
    assert!(d.create.is_none());
    // Years behind: warned, still one Job, found in bounded time.
    let cj = cron_job(json!({"schedule": "* * * * *"}), json!({}));
    let d = reconcile(&cj, &[], at("2031-06-01T12:00:30Z"));
    assert_eq!(
        d.status.last_schedule_time,
        Some(Time(at("2031-06-01T12:00:00Z")))
    );
    assert!(d.events.iter().any(|e| e.1 == "TooManyMissedTimes"));
}

#[test]
fn schedules_read_in_their_time_zone_and_standard_syntax() {
    // 09:00 in Berlin is 08:00 UTC in January.
    let cj = cron_job(
        json!({"schedule": "0 9 * * *", "timeZone": "Europe/Berlin"}),
        json!({}),
    );
    let d = reconcile(&cj, &[], at("2026-01-01T08:30:00Z"));
    assert_eq!(
        d.status.last_schedule_time,
        Some(Time(at("2026-01-01T08:00:00Z")))
    );
    let utc = Zoned::new(at("2026-01-01T00:00:00Z"), TimeZone::UTC);
    let next = |s: &str| Schedule::parse(s).unwrap().next(&utc).unwrap().timestamp();
    assert_eq!(next("@hourly"), at("2026-01-01T01:00:00Z"));
    // 2026-01-01 is a Thursday: Mondays or the 15th, whichever first (Vixie's "or").
    assert_eq!(next("0 0 15 * mon"), at("2026-01-05T00:00:00Z"));
    assert_eq!(next("0 0 * * 1"), at("2026-01-05T00:00:00Z"));
    assert_eq!(next("30 2 1 jan-mar ?"), at("2026-01-01T02:30:00Z"));
    assert_eq!(next("@every 90s"), at("2026-01-01T00:01:30Z"));
    assert!(Schedule::parse("61 * * * *").is_err());
    // Suspended: nothing, and no wake-up.
    let suspended = cron_job(json!({"suspend": true}), json!({}));
    let d = reconcile(&suspended, &[], at("2026-01-01T00:07:00Z"));
    assert!(d.create.is_none() && d.requeue_after.is_none());
}
