//! The actor of one pod-owning object, generic over its kind: a ReplicaSet's and a
//! Job's actor are [`OwnerActor<ReplicaSet>`] and [`OwnerActor<Job>`]. It keeps the
//! last [`Resync`] its supervisor sent, decides with the kind's pure reconcile
//! ([`Owner::decide`]) and carries the decision out ([`Owner::carry_out`]) as
//! one marked reconcile, one at a time. Expectations keep it from acting twice on a
//! view that has not caught up with its own writes.
//!
//! Killed, even between two writes of a reconcile, it starts from nothing: its
//! supervisor sends it a fresh [`Resync`] (the factory asks for one), and the store
//! shows what the writes that happened did.

use std::time::Duration;

use actix::prelude::*;
use rk8s_supervision::Handle;

use crate::common::Expectations;
use crate::owner::{Done, Owner, Resync, View};

/// Slack added to a requested requeue, so the deadline has passed when it fires.
const REQUEUE_SLACK: Duration = Duration::from_millis(100);

/// One owner's actor.
pub struct OwnerActor<K: Owner> {
    client: kube::Client,
    me: Handle<Self>,
    latest: Option<Resync<K>>,
    busy: bool,
    expected: Expectations,
    wake: Option<SpawnHandle>,
    /// Whether `latest` came after the last decision (a decision made twice on one
    /// view would record its events twice).
    fresh: bool,
    /// The message of the last failed creation.
    failure: Option<String>,
}

impl<K: Owner> OwnerActor<K> {
    /// An actor talking to the API through `client`; `me` is its handle.
    pub fn new(client: kube::Client, me: Handle<Self>) -> Self {
        OwnerActor {
            client,
            me,
            latest: None,
            busy: false,
            expected: Expectations::default(),
            wake: None,
            fresh: false,
            failure: None,
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some(resync) = self.latest.as_ref() else {
            return;
        };
        self.fresh = false;
        let decided = resync.owner.decide(&View {
            owned: &resync.owned,
            nodes: &resync.nodes,
            satisfied: self.expected.satisfied(),
            failure: self.failure.as_deref(),
            now: jiff::Timestamp::now(),
        });
        if let Some(handle) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        if let Some(after) = decided.requeue_after {
            self.wake = Some(ctx.run_later(after + REQUEUE_SLACK, |act, ctx| act.step(ctx)));
        }
        let Some(plan) = decided.plan else {
            return;
        };
        let asked = (decided.create, decided.delete);
        if asked.0 > 0 || !asked.1.is_empty() {
            self.expected.expect(asked.0, asked.1.iter().cloned());
        }
        self.busy = true;
        let (client, owner, pods) = (
            self.client.clone(),
            resync.owner.clone(),
            resync.owned_by_name(),
        );
        let work = self.me.reconcile(async move {
            let started = std::time::Instant::now();
            let done = K::carry_out(client, owner, pods, plan).await;
            crate::metrics::reconciled(K::KIND, started.elapsed(), done.failure.is_some());
            done
        });
        ctx.spawn(
            work.into_actor(self)
                .map(move |done, act, ctx| act.done(asked, done, ctx)),
        );
    }

    /// The plan that asked for `asked` (creations, deletions) did `done`.
    fn done(&mut self, asked: (usize, Vec<String>), done: Done, ctx: &mut Context<Self>) {
        self.busy = false;
        // What was not done will never be seen; what was is waited for still (a
        // decision on a view without it would make or delete pods again).
        let (create, delete) = asked;
        self.expected
            .carried_out(create, &delete, done.created, &done.deleted);
        let failure = done.failure;
        // A failure begun or ended shows in the status: decide again. Another failure
        // after one (each names the pod it could not make) waits for the next change
        // or the periodic resync, as kube-controller-manager requeues a failed sync
        // with a backoff rather than at once.
        let changed = failure.is_some() != self.failure.is_some();
        self.failure = failure;
        if self.fresh || changed {
            self.step(ctx);
        }
    }
}

impl<K: Owner> Actor for OwnerActor<K> {
    type Context = Context<Self>;
}

impl<K: Owner> Handler<Resync<K>> for OwnerActor<K> {
    type Result = ();

    fn handle(&mut self, msg: Resync<K>, ctx: &mut Self::Context) {
        self.me.received();
        // Another object of the same name: nothing expected of the last one holds.
        let uid = |r: &Resync<K>| r.owner.meta().uid.clone();
        if self.latest.as_ref().is_some_and(|l| uid(l) != uid(&msg)) {
            self.expected.clear();
        }
        msg.observe(&mut self.expected);
        self.latest = Some(msg);
        self.fresh = true;
        self.step(ctx);
    }
}
