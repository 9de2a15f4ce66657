--------------------------- MODULE IsrReplication ---------------------------
(***************************************************************************)
(* ISR replication of ONE rill partition, in rill's (and Kafka's) terms.  *)
(*                                                                         *)
(* Who is modelled:                                                        *)
(*  - the replicas (brokers): a log of records tagged with the leader     *)
(*    epoch that wrote them, a local high watermark, and the partition   *)
(*    metadata the broker last applied (`meta`);                           *)
(*  - the controller's partition record (`ctl`): leader, leader epoch,    *)
(*    partition epoch, ISR, ELR (KIP-966) and the set of fenced brokers.  *)
(*    The controller quorum itself is abstracted here (its log is the     *)
(*    subject of ControllerElection.tla): a controller step is atomic.    *)
(*                                                                         *)
(* A fetch is one atomic round trip (request, LeaderHandleFetch, response)*)
(* and copies every record the leader has beyond the fetch offset.  An    *)
(* AlterPartition request and its response are one atomic step as well.  *)
(*                                                                         *)
(* Offsets are 1-based positions in a TLA+ sequence (Kafka offset + 1),   *)
(* so "hw = 2" means offsets 1..2 are below the high watermark.           *)
(*                                                                         *)
(* Flags (CONSTANTS) select the protocol variant:                          *)
(*  Elr             KIP-966 eligible leader replicas; FALSE is the older   *)
(*                  "last replica standing" rule: the controller never    *)
(*                  removes the last ISR member.                          *)
(*  UncleanElection elect an out-of-sync live replica when no eligible one*)
(*  UnflushedLoss   a crash loses any suffix of the log (no fsync)        *)
(*  EpochFencing    KIP-320: fetches carry the current leader epoch and   *)
(*                  the last fetched epoch; FALSE = pre-KIP-320 protocol:  *)
(*                  one OffsetsForLeaderEpoch truncation after becoming    *)
(*                  follower, then unfenced fetches by offset.            *)
(*  TruncateToHw    pre-KIP-101 bug: a new follower truncates to its HW.  *)
(*  BrokerEpochCheck  KIP-903: ISR expansion needs a fetch by the         *)
(*                  follower's current incarnation.                       *)
(*  ReportFlushedOnly rill: only flushed offsets count toward the HW.    *)
(*  FaultKinds      which faults happen: "crash", "fence", "shrink".       *)
(***************************************************************************)
EXTENDS Integers, Sequences, FiniteSets, TLC

CONSTANTS
    Replicas,         \* the partition's replica set (broker ids)
    None,             \* "no broker"
    MinIsr,           \* min.insync.replicas
    MaxRecords,       \* how many records producers send in total
    MaxFaults,        \* crashes + controller fencings + ISR shrinks
    FaultKinds,       \* which faults may happen: subset of {"crash", "fence", "shrink"}
    Elr, UncleanElection, UnflushedLoss, EpochFencing, TruncateToHw,
    BrokerEpochCheck, \* KIP-903: ISR expansion checks the follower's broker epoch
    ReportFlushedOnly \* rill: fetch offsets and the leader's own LEO count toward
                      \* the HW only once flushed, so a crash never loses them

ASSUME None \notin Replicas
ASSUME MinIsr \in 1..Cardinality(Replicas)
ASSUME MaxRecords \in Nat /\ MaxFaults \in Nat
ASSUME FaultKinds \subseteq {"crash", "fence", "shrink"}
ASSUME \A flag \in {Elr, UncleanElection, UnflushedLoss, EpochFencing, TruncateToHw,
                     BrokerEpochCheck, ReportFlushedOnly} :
          flag \in BOOLEAN

VARIABLES
    log,          \* [Replicas -> Seq([id, epoch])]: each replica's log
    hw,           \* [Replicas -> Nat]: each replica's local high watermark
    meta,         \* [Replicas -> [leader, epoch, isr, pepoch]]: applied metadata
    fetchState,   \* [Replicas -> [leader, epoch, leo, inc]]: the fetch offset a
                  \*   follower last reported, to which leader, in which leader
                  \*   epoch, from which broker incarnation (the leader's "remote
                  \*   replica state"; it goes stale when the follower crashes)
    incarnation,  \* [Replicas -> Nat]: broker epoch, bumped by each restart
    truncPending, \* [Replicas -> BOOLEAN]: pre-KIP-320 only, truncation not yet done
    ctl,          \* the controller's partition record
    nextId,       \* next record id a producer sends
    acked,        \* set of [id, offset] acknowledged to producers (acks=all)
    faults        \* faults spent so far

vars == <<log, hw, meta, fetchState, incarnation, truncPending, ctl, nextId, acked, faults>>

-----------------------------------------------------------------------------
(* Helpers *)

Min(a, b) == IF a < b THEN a ELSE b
Max(a, b) == IF a > b THEN a ELSE b
MinOf(S) == CHOOSE x \in S : \A y \in S : x <= y
MaxOf(S) == CHOOSE x \in S : \A y \in S : x >= y

LEO(r) == Len(log[r])
LastEpoch(r) == IF log[r] = <<>> THEN 0 ELSE log[r][Len(log[r])].epoch
Prefix(s, n) == SubSeq(s, 1, n)

\* OffsetsForLeaderEpoch on log `lg` for epoch `e`: the largest epoch <= e
\* present in the log, and the end offset of that epoch (epochs never
\* decrease along a log, so this is the count of records with epoch <= e).
LargestEpochAtMost(lg, e) ==
    LET S == {lg[i].epoch : i \in {j \in 1..Len(lg) : lg[j].epoch <= e}}
    IN IF S = {} THEN 0 ELSE MaxOf(S)
EndOffsetFor(lg, e) == Cardinality({i \in 1..Len(lg) : lg[i].epoch <= e})

NoMeta == [leader |-> None, epoch |-> 0, isr |-> {}, pepoch |-> 0]
NoFetch == [leader |-> None, epoch |-> 0, leo |-> 0, inc |-> 0]

IsLeader(r) == meta[r].leader = r
\* The first offset the leader wrote in its current epoch, minus one.
EpochStart(l) == Cardinality({i \in 1..LEO(l) : log[l][i].epoch < meta[l].epoch})
\* The follower LEO leader `l` knows from fetch state `fs`; unknown counts as 0.
KnownLeo(fs, l, f) ==
    IF f = l THEN LEO(l)
    ELSE IF fs[f].leader = l /\ fs[f].epoch = meta[l].epoch THEN fs[f].leo ELSE 0

\* Kafka's maybeIncrementLeaderHW: the minimum LEO over the leader's ISR view,
\* never moving backwards; with KIP-966 only while |ISR| >= min ISR.
NewHw(l, leoL, isr, fs) ==
    LET cand == MinOf({leoL} \cup {KnownLeo(fs, l, f) : f \in isr \ {l}})
    IN IF (~Elr \/ Cardinality(isr) >= MinIsr) /\ cand > hw[l] THEN cand ELSE hw[l]

\* Delayed produces (acks=all) that complete when the HW moves from `from`
\* to `to`: only while |ISR| >= min ISR (else NOT_ENOUGH_REPLICAS_AFTER_APPEND).
AcksFor(lg, isr, from, to) ==
    IF Cardinality(isr) >= MinIsr
    THEN {[id |-> lg[i].id, offset |-> i] : i \in (from + 1)..to}
    ELSE {}

-----------------------------------------------------------------------------
(* The controller's partition state machine (PartitionChangeBuilder). *)

\* KIP-966: ELR is only meaningful while the ISR is below min ISR.
NormElr(isr, elr) ==
    IF ~Elr \/ Cardinality(isr) >= MinIsr THEN {} ELSE elr \ isr

\* Who may be elected leader: a live ISR member, else (KIP-966) a live ELR
\* member, else (unclean election) any live replica.
Candidates(c) ==
    LET live == Replicas \ c.fenced
    IN IF c.isr \cap live # {} THEN c.isr \cap live
       ELSE IF Elr /\ c.elr \cap live # {} THEN c.elr \cap live
       ELSE IF UncleanElection THEN live
       ELSE {}

\* Electing `nl` (or None) as leader; bumps the leader epoch.
ElectOutcome(c, nl) ==
    IF nl = None THEN [c EXCEPT !.leader = None, !.epoch = @ + 1]
    ELSE IF nl \in c.isr THEN [c EXCEPT !.leader = nl, !.epoch = @ + 1]
    ELSE [c EXCEPT !.leader = nl, !.epoch = @ + 1, !.isr = {nl},
                   !.elr = NormElr({nl}, c.elr \ {nl})]

\* The partition part of the record changed: bump the partition epoch.
Bump(old, new) ==
    IF <<old.leader, old.epoch, old.isr, old.elr>> = <<new.leader, new.epoch, new.isr, new.elr>>
    THEN new ELSE [new EXCEPT !.pepoch = old.pepoch + 1]

\* Fence broker r (session expired, or it re-registered after a crash):
\* out of the ISR (unless it is the last member and KIP-966 is off), into
\* the ELR if the ISR drops below min ISR, out of the ELR after an unclean
\* shutdown.  The result before a possible leader re-election:
Fenced(c, r, unclean) ==
    LET newIsr == IF ~Elr /\ c.isr = {r} THEN c.isr ELSE c.isr \ {r}
        removed == c.isr \ newIsr
        elr1 == IF Elr /\ Cardinality(newIsr) < MinIsr THEN c.elr \cup removed ELSE c.elr
        elr2 == IF unclean THEN elr1 \ {r} ELSE elr1
    IN [c EXCEPT !.isr = newIsr, !.elr = NormElr(newIsr, elr2), !.fenced = @ \cup {r}]

\* The possible controller records after fencing r, re-electing if r led.
FenceOutcomes(c, r, unclean) ==
    LET c1 == Fenced(c, r, unclean)
        choices == IF c1.leader # r THEN {c1.leader}
                   ELSE IF Candidates(c1) = {} THEN {None} ELSE Candidates(c1)
    IN {Bump(c, IF nl = c1.leader THEN c1 ELSE ElectOutcome(c1, nl)) : nl \in choices}

-----------------------------------------------------------------------------
Init ==
    /\ log = [r \in Replicas |-> <<>>]
    /\ hw = [r \in Replicas |-> 0]
    /\ meta = [r \in Replicas |-> NoMeta]
    /\ fetchState = [r \in Replicas |-> NoFetch]
    /\ incarnation = [r \in Replicas |-> 0]
    /\ truncPending = [r \in Replicas |-> FALSE]
    /\ ctl = [leader |-> None, epoch |-> 0, pepoch |-> 0, isr |-> Replicas,
              elr |-> {}, fenced |-> {}]
    /\ nextId = 1
    /\ acked = {}
    /\ faults = 0

-----------------------------------------------------------------------------
(* Controller actions *)

\* Elect a leader for an offline partition (first election, or after the
\* last eligible replica was unfenced).
ControllerElectLeader(r) ==
    /\ ctl.leader = None
    /\ r \in Candidates(ctl)
    /\ ctl' = Bump(ctl, ElectOutcome(ctl, r))
    /\ UNCHANGED <<log, hw, meta, fetchState, truncPending, nextId, acked, faults, incarnation>>

\* The broker's session expired (it may well be alive: a zombie).
ControllerFenceBroker(r) ==
    /\ "fence" \in FaultKinds
    /\ faults < MaxFaults
    /\ r \notin ctl.fenced
    /\ ctl' \in FenceOutcomes(ctl, r, FALSE)
    /\ faults' = faults + 1
    /\ UNCHANGED <<log, hw, meta, fetchState, truncPending, nextId, acked, incarnation>>

\* The broker heartbeats again and has caught up with the metadata log
\* (KRaft unfences a broker only once it has replayed the metadata log).
ControllerUnfenceBroker(r) ==
    /\ r \in ctl.fenced
    /\ meta[r].pepoch = ctl.pepoch
    /\ ctl' = [ctl EXCEPT !.fenced = @ \ {r}]
    /\ UNCHANGED <<log, hw, meta, fetchState, truncPending, nextId, acked, faults, incarnation>>

-----------------------------------------------------------------------------
(* Broker-side metadata application (the broker applies the controller's  *)
(* latest committed partition record; skipping intermediate records is    *)
(* equivalent to applying each one when it was the latest).               *)

BecomeLeader(r) ==
    /\ ctl.leader = r
    /\ meta[r].pepoch < ctl.pepoch
    /\ meta' = [meta EXCEPT ![r] = [leader |-> r, epoch |-> ctl.epoch,
                                    isr |-> ctl.isr, pepoch |-> ctl.pepoch]]
    /\ truncPending' = [truncPending EXCEPT ![r] = FALSE]
    /\ UNCHANGED <<log, hw, fetchState, ctl, nextId, acked, faults, incarnation>>

BecomeFollower(r) ==
    /\ ctl.leader # r
    /\ meta[r].pepoch < ctl.pepoch
    /\ LET newEpoch == ctl.epoch # meta[r].epoch
           keep == IF TruncateToHw /\ newEpoch THEN hw[r] ELSE LEO(r)
       IN /\ meta' = [meta EXCEPT ![r] = [leader |-> ctl.leader, epoch |-> ctl.epoch,
                                          isr |-> ctl.isr, pepoch |-> ctl.pepoch]]
          /\ log' = [log EXCEPT ![r] = Prefix(@, keep)]
          /\ truncPending' = [truncPending EXCEPT ![r] =
                                IF newEpoch THEN ~EpochFencing /\ ctl.leader # None ELSE @]
    /\ UNCHANGED <<hw, fetchState, ctl, nextId, acked, faults, incarnation>>

-----------------------------------------------------------------------------
(* Data path *)

\* A producer's acks=all batch of one record; refused with
\* NOT_ENOUGH_REPLICAS unless the leader's ISR view has min ISR members.
LeaderAppend(l) ==
    /\ IsLeader(l)
    /\ nextId <= MaxRecords
    /\ Cardinality(meta[l].isr) >= MinIsr
    /\ LET newLog == Append(log[l], [id |-> nextId, epoch |-> meta[l].epoch])
           newHw == NewHw(l, Len(newLog), meta[l].isr, fetchState)
       IN /\ log' = [log EXCEPT ![l] = newLog]
          /\ hw' = [hw EXCEPT ![l] = newHw]
          /\ acked' = acked \cup AcksFor(newLog, meta[l].isr, hw[l], newHw)
    /\ nextId' = nextId + 1
    /\ UNCHANGED <<meta, fetchState, truncPending, ctl, faults, incarnation>>

\* Would leader l answer a fetch of follower f with a diverging epoch?
\* (the follower sends its LEO and the epoch of its last record)
Diverging(f, l) ==
    /\ LEO(f) > 0
    /\ LET e == LastEpoch(f)
       IN \/ LargestEpochAtMost(log[l], e) < e
          \/ EndOffsetFor(log[l], e) < LEO(f)

\* The leader accepts a fetch from follower f.
FetchAccepted(f, l) ==
    /\ l # None /\ l # f
    /\ IsLeader(l)
    /\ ~truncPending[f]
    /\ IF EpochFencing
       THEN meta[f].epoch = meta[l].epoch /\ ~Diverging(f, l)
       ELSE LEO(f) <= LEO(l)

\* One fetch round trip: the follower sends its LEO, the leader records it
\* (LeaderHandleFetch), maybe advances its HW and completes produces, and
\* returns the records beyond the LEO and its HW; the follower appends.
FollowerFetch(f) ==
    LET l == meta[f].leader IN
    /\ FetchAccepted(f, l)
    /\ LET fs == [fetchState EXCEPT ![f] = [leader |-> l, epoch |-> meta[l].epoch,
                                             leo |-> LEO(f), inc |-> incarnation[f]]]
           newHw == NewHw(l, LEO(l), meta[l].isr, fs)
           newLog == log[f] \o SubSeq(log[l], LEO(f) + 1, LEO(l))
       IN /\ fetchState' = fs
          /\ log' = [log EXCEPT ![f] = newLog]
          /\ hw' = [hw EXCEPT ![l] = newHw, ![f] = Min(newHw, Len(newLog))]
          /\ acked' = acked \cup AcksFor(log[l], meta[l].isr, hw[l], newHw)
    /\ UNCHANGED <<meta, truncPending, ctl, nextId, faults, incarnation>>

\* The follower truncates its divergent suffix: with KIP-320 on a fetch
\* answered with a diverging epoch, before it on the one OffsetsForLeaderEpoch
\* after becoming follower.  Truncation point: min of the leader's end offset
\* for the epoch and the follower's own end offset for that epoch (KIP-279).
FollowerTruncate(f) ==
    LET l == meta[f].leader IN
    /\ l # None /\ l # f
    /\ IsLeader(l)
    /\ IF EpochFencing
       THEN meta[f].epoch = meta[l].epoch /\ Diverging(f, l)
       ELSE truncPending[f]
    /\ LET le == LargestEpochAtMost(log[l], LastEpoch(f))
           to == Min(EndOffsetFor(log[l], le), EndOffsetFor(log[f], le))
       IN /\ log' = [log EXCEPT ![f] = Prefix(@, to)]
          /\ hw' = [hw EXCEPT ![f] = Min(@, to)]
    /\ truncPending' = [truncPending EXCEPT ![f] = FALSE]
    /\ UNCHANGED <<meta, fetchState, ctl, nextId, acked, faults, incarnation>>

-----------------------------------------------------------------------------
(* ISR changes: AlterPartition from the leader, validated by the controller*)
(* against the leader epoch and the partition epoch the leader holds.      *)

AlterPartitionValid(l) ==
    /\ IsLeader(l)
    /\ ctl.leader = l
    /\ ctl.epoch = meta[l].epoch
    /\ ctl.pepoch = meta[l].pepoch

\* Apply an accepted AlterPartition(newIsr): controller record and response.
AlterPartitionCommit(l, newIsr, elr) ==
    /\ ctl' = [ctl EXCEPT !.isr = newIsr, !.elr = NormElr(newIsr, elr),
                          !.pepoch = @ + 1]
    /\ meta' = [meta EXCEPT ![l].isr = newIsr, ![l].pepoch = ctl.pepoch + 1]

\* Shrink: follower f has not caught up to the leader's LEO in time.
IsrShrink(l) ==
    /\ "shrink" \in FaultKinds
    /\ faults < MaxFaults
    /\ AlterPartitionValid(l)
    /\ \E f \in meta[l].isr \ {l} :
          /\ KnownLeo(fetchState, l, f) < LEO(l)
          /\ LET newIsr == meta[l].isr \ {f}
                 elr == IF Elr /\ Cardinality(newIsr) < MinIsr THEN ctl.elr \cup {f}
                        ELSE ctl.elr
                 newHw == NewHw(l, LEO(l), newIsr, fetchState)
             IN /\ AlterPartitionCommit(l, newIsr, elr)
                /\ hw' = [hw EXCEPT ![l] = newHw]
                /\ acked' = acked \cup AcksFor(log[l], newIsr, hw[l], newHw)
    /\ faults' = faults + 1
    /\ UNCHANGED <<log, fetchState, truncPending, nextId, incarnation>>

\* Expand: follower f fetched in this leader epoch up to the HW and to the
\* start of the leader's epoch, and is not fenced.
IsrExpand(l) ==
    /\ AlterPartitionValid(l)
    /\ \E f \in Replicas \ meta[l].isr :
          /\ f \notin ctl.fenced
          /\ fetchState[f].leader = l /\ fetchState[f].epoch = meta[l].epoch
          /\ fetchState[f].leo >= Max(hw[l], EpochStart(l))
          /\ BrokerEpochCheck => fetchState[f].inc = incarnation[f]
          /\ AlterPartitionCommit(l, meta[l].isr \cup {f}, ctl.elr \ {f})
    /\ UNCHANGED <<log, hw, fetchState, truncPending, nextId, acked, faults, incarnation>>

AlterPartition(l) == IsrShrink(l) \/ IsrExpand(l)

-----------------------------------------------------------------------------
(* Faults *)

\* What a crash cannot lose: with ReportFlushedOnly, the offset r last reported
\* in a fetch and, on a leader, its HW (counted from its flushed LEO).
KeepMin(r) ==
    IF ~ReportFlushedOnly THEN 0
    ELSE Min(LEO(r), Max(fetchState[r].leo, IF IsLeader(r) THEN hw[r] ELSE 0))

\* The broker process dies and restarts: with UnflushedLoss any unflushed
\* suffix of its log is gone; it forgets its metadata; its re-registration
\* makes the controller fence it (an unclean shutdown for KIP-966).  The
\* leader keeps the stale fetch state it had for it.
BrokerCrash(r) ==
    /\ "crash" \in FaultKinds
    /\ faults < MaxFaults
    /\ \E keep \in (IF UnflushedLoss THEN KeepMin(r)..LEO(r) ELSE {LEO(r)}) :
          /\ log' = [log EXCEPT ![r] = Prefix(@, keep)]
          /\ hw' = [hw EXCEPT ![r] = Min(@, keep)]
    /\ meta' = [meta EXCEPT ![r] = NoMeta]
    /\ truncPending' = [truncPending EXCEPT ![r] = FALSE]
    /\ ctl' \in FenceOutcomes(ctl, r, UnflushedLoss)
    /\ incarnation' = [incarnation EXCEPT ![r] = @ + 1]
    /\ faults' = faults + 1
    /\ UNCHANGED <<fetchState, nextId, acked>>

-----------------------------------------------------------------------------
Next ==
    \E r \in Replicas :
        \/ ControllerElectLeader(r)
        \/ ControllerFenceBroker(r)
        \/ ControllerUnfenceBroker(r)
        \/ BecomeLeader(r)
        \/ BecomeFollower(r)
        \/ LeaderAppend(r)
        \/ FollowerFetch(r)
        \/ FollowerTruncate(r)
        \/ AlterPartition(r)
        \/ BrokerCrash(r)

\* Recovery is fair; producers and faults are not.
Fairness ==
    \A r \in Replicas :
        /\ WF_vars(ControllerElectLeader(r))
        /\ WF_vars(ControllerUnfenceBroker(r))
        /\ WF_vars(BecomeLeader(r))
        /\ WF_vars(BecomeFollower(r))
        /\ WF_vars(FollowerFetch(r))
        /\ WF_vars(FollowerTruncate(r))
        /\ WF_vars(IsrExpand(r))

Spec == Init /\ [][Next]_vars
FairSpec == Spec /\ Fairness

\* Vacuity check for the liveness property: followers may stop fetching.
LazyFollowerSpec ==
    Spec /\ \A r \in Replicas :
        /\ WF_vars(ControllerElectLeader(r)) /\ WF_vars(ControllerUnfenceBroker(r))
        /\ WF_vars(BecomeLeader(r)) /\ WF_vars(BecomeFollower(r))
        /\ WF_vars(FollowerTruncate(r)) /\ WF_vars(IsrExpand(r))

-----------------------------------------------------------------------------
(* Properties *)

TypeOK ==
    /\ \A r \in Replicas : hw[r] \in 0..LEO(r) /\ LEO(r) <= MaxRecords
    /\ ctl.leader \in Replicas \cup {None}
    /\ ctl.isr \subseteq Replicas /\ ctl.elr \subseteq Replicas
    /\ ctl.isr \cap ctl.elr = {}
    /\ faults \in 0..MaxFaults

\* The user-facing guarantee: the current leader holds every acknowledged
\* record at the offset it was acknowledged at.
NoAckedRecordLost ==
    ctl.leader # None =>
        \A a \in acked :
            /\ LEO(ctl.leader) >= a.offset
            /\ log[ctl.leader][a.offset].id = a.id

\* Why it holds: every replica the controller may elect without an unclean
\* election (ISR and ELR) holds every acknowledged record.
EligibleHoldAckedRecords ==
    \A a \in acked, r \in ctl.isr \cup ctl.elr :
        LEO(r) >= a.offset /\ log[r][a.offset].id = a.id

\* No inconsistent offsets: two replicas agree on every offset below both
\* their high watermarks (what consumers can read).
ReplicasAgreeBelowHw ==
    \A r1, r2 \in Replicas :
        \A i \in 1..Min(hw[r1], hw[r2]) : log[r1][i] = log[r2][i]

\* At most one broker acts as leader in any leader epoch.
AtMostOneLeaderPerEpoch ==
    \A r1, r2 \in Replicas :
        (IsLeader(r1) /\ IsLeader(r2) /\ meta[r1].epoch = meta[r2].epoch) => r1 = r2

\* A leader's HW never moves backwards within its epoch.
HwMonotonicOnLeader ==
    [][\A r \in Replicas :
         (IsLeader(r) /\ IsLeader(r)' /\ meta[r].epoch = meta'[r].epoch)
            => hw'[r] >= hw[r]]_vars

\* Leader and partition epochs only grow.
EpochsGrow ==
    [][ctl'.epoch >= ctl.epoch /\ ctl'.pepoch >= ctl.pepoch]_vars

\* Liveness (FairSpec, bounded faults): an acknowledged record eventually
\* reaches every replica.
AckedReachesEveryReplica ==
    \A i \in 1..MaxRecords, x \in 1..MaxRecords :
        ([id |-> x, offset |-> i] \in acked) ~>
            (\A r \in Replicas : LEO(r) >= i /\ log[r][i].id = x)

Symmetry == Permutations(Replicas)
=============================================================================
