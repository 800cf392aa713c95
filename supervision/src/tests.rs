//! The kit's behaviour, on a real actix system: kills crash (mid-reconcile too),
//! mailboxes go with the incarnation, the registry finds, lists and stops actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::Notify;

use crate::{ActorInfo, Actors, Handle, Kills, wrote};

/// Counts what it handles in `handled` (shared across incarnations, as the store is)
/// and, in `writes`, what its reconcile wrote; `own` is its incarnation's own memory.
struct Victim {
    me: Handle<Victim>,
    handled: Arc<AtomicU32>,
    writes: Arc<AtomicU32>,
    gate: Arc<Notify>,
    own: u32,
}

impl Actor for Victim {
    type Context = Context<Self>;
}

/// Blocks the actor's mailbox until the gate opens.
#[derive(Message)]
#[rtype(result = "()")]
struct Hold;

#[derive(Message)]
#[rtype(result = "u32")]
struct Count;

/// A reconcile of two writes with the gate between them.
#[derive(Message)]
#[rtype(result = "()")]
struct Reconcile;

#[derive(Message)]
#[rtype(result = "()")]
struct Panic;

impl Handler<Hold> for Victim {
    type Result = ();
    fn handle(&mut self, _: Hold, ctx: &mut Context<Self>) {
        self.me.received();
        let gate = self.gate.clone();
        ctx.wait(async move { gate.notified().await }.into_actor(self));
    }
}

impl Handler<Count> for Victim {
    type Result = u32;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u32 {
        self.me.received();
        self.handled.fetch_add(1, Ordering::SeqCst);
        self.own += 1;
        self.own
    }
}

impl Handler<Reconcile> for Victim {
    type Result = ();
    fn handle(&mut self, _: Reconcile, ctx: &mut Context<Self>) {
        self.me.received();
        let (gate, writes) = (self.gate.clone(), self.writes.clone());
        let work = self.me.reconcile(async move {
            writes.fetch_add(1, Ordering::SeqCst);
            wrote();
            gate.notified().await;
            writes.fetch_add(1, Ordering::SeqCst);
            wrote();
        });
        ctx.spawn(work.into_actor(self));
    }
}

impl Handler<Panic> for Victim {
    type Result = ();
    fn handle(&mut self, _: Panic, _: &mut Context<Self>) {
        panic!("told to");
    }
}

struct Shared {
    handled: Arc<AtomicU32>,
    writes: Arc<AtomicU32>,
    gate: Arc<Notify>,
}

fn start(actors: &Actors, name: &str) -> (Handle<Victim>, Shared) {
    let shared = Shared {
        handled: Arc::default(),
        writes: Arc::default(),
        gate: Arc::default(),
    };
    let (handled, writes, gate) = (
        shared.handled.clone(),
        shared.writes.clone(),
        shared.gate.clone(),
    );
    let handle = actors.start("Test", name, move |me| Victim {
        me,
        handled: handled.clone(),
        writes: writes.clone(),
        gate: gate.clone(),
        own: 0,
    });
    (handle, shared)
}

/// Sends `Count` until an incarnation answers (one being replaced drops it).
async fn count(handle: &Handle<Victim>) -> u32 {
    for _ in 0..100 {
        if let Ok(n) = handle.send(Count).await {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no incarnation answered");
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[actix::test]
async fn a_kill_does_not_wait_behind_queued_messages_and_drops_them() {
    let actors = Actors::default();
    let (victim, shared) = start(&actors, "a");
    assert_eq!(count(&victim).await, 1);
    victim.do_send(Hold);
    for _ in 0..5 {
        victim.do_send(Count);
    }
    settle().await;
    assert_eq!(actors.list()[0].mailbox, 5, "{:?}", actors.list());
    assert!(actors.kill("Test", "a"));
    settle().await;
    // The five queued messages went with the mailbox; the new incarnation starts
    // from its factory.
    assert_eq!(shared.handled.load(Ordering::SeqCst), 1);
    assert_eq!(count(&victim).await, 1);
    assert_eq!(
        actors.list(),
        [ActorInfo {
            kind: "Test".into(),
            name: "a".into(),
            restarts: 1,
            mailbox: 0,
            reconciling: false,
        }]
    );
    assert_eq!(
        actors.kills(),
        Kills {
            idle: 1,
            ..Kills::default()
        }
    );
}

#[actix::test]
async fn a_kill_lands_between_two_writes_of_a_reconcile_and_the_rest_never_happens() {
    let actors = Actors::default();
    let (victim, shared) = start(&actors, "a");
    victim.do_send(Reconcile);
    settle().await;
    assert_eq!(shared.writes.load(Ordering::SeqCst), 1);
    assert!(actors.list()[0].reconciling);
    assert!(victim.kill());
    settle().await;
    shared.gate.notify_waiters();
    settle().await;
    assert_eq!(
        shared.writes.load(Ordering::SeqCst),
        1,
        "the second write ran"
    );
    assert!(!actors.list()[0].reconciling);
    assert_eq!(
        actors.kills(),
        Kills {
            between_writes: 1,
            ..Kills::default()
        }
    );
    assert_eq!(actors.kills().mid_reconcile(), 1);
}

#[actix::test]
async fn a_panicking_actor_is_started_again() {
    let actors = Actors::default();
    let (victim, _shared) = start(&actors, "a");
    victim.do_send(Panic);
    tokio::time::sleep(crate::supervisor::PANIC_BACKOFF + Duration::from_millis(200)).await;
    assert_eq!(count(&victim).await, 1);
    assert_eq!(actors.list()[0].restarts, 1);
}

#[actix::test]
async fn stopped_actors_leave_the_registry_and_their_handles_go_dead() {
    let actors = Actors::default();
    let (a, _) = start(&actors, "a");
    let (b, _) = start(&actors, "b");
    actors.stop("Test", "a");
    settle().await;
    assert!(!a.alive());
    assert!(a.send(Count).await.is_err());
    assert_eq!(actors.names("Test"), ["b"]);
    actors.clear();
    settle().await;
    assert!(!b.alive());
    assert!(actors.list().is_empty());
    assert!(!actors.kill("Test", "b"));
    assert_eq!(actors.kill_random(), None);
}

#[actix::test]
async fn the_registry_finds_a_running_actor_by_kind_name_and_type() {
    let actors = Actors::default();
    let (a, _) = start(&actors, "a");
    let found: Handle<Victim> = actors.get("Test", "a").unwrap();
    assert_eq!(count(&found).await, 1);
    assert_eq!(count(&a).await, 2);
    let again = actors.get_or_start("Test", "a", |_| -> Victim { unreachable!() });
    assert_eq!(count(&again).await, 3);
    assert_eq!(actors.all::<Victim>("Test").len(), 1);
    assert_eq!(
        actors.kill_random(),
        Some(("Test".to_string(), "a".to_string()))
    );
    // Forgotten, it runs on unlisted; its name is free.
    actors.forget("Test", "a");
    assert!(actors.get::<Victim>("Test", "a").is_none());
    assert!(a.alive());
    a.stop();
}
