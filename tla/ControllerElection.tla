------------------------- MODULE ControllerElection -------------------------
(***************************************************************************)
(* rill's controller: a Raft-replicated metadata log (abstracted), whose  *)
(* active controller fences brokers and elects partition leaders, and the *)
(* brokers that apply the metadata log.  One partition, whose replicas are*)
(* all the brokers.                                                        *)
(*                                                                         *)
(* The Raft layer is abstract: an election is one atomic step in which a  *)
(* quorum moves to the new term and grants its votes; AppendEntries copies*)
(* the leader's whole log to a follower in one step; a leader commits an  *)
(* entry of its own term once a quorum's logs hold it.  A metadata record *)
(* here carries the whole resulting partition and broker-fencing state,   *)
(* like a PartitionChangeRecord applied to the previous image.            *)
(*                                                                         *)
(* Flags:                                                                  *)
(*  VoteChecksLog          a voter grants its vote only to a candidate    *)
(*                         whose log is at least as up to date (Raft      *)
(*                         5.4.1); FALSE is a negative control.           *)
(*  BrokersReadCommitted   brokers apply only committed metadata (KRaft  *)
(*                         brokers fetch up to the high watermark); FALSE *)
(*                         is a negative control.                         *)
(***************************************************************************)
EXTENDS Integers, Sequences, FiniteSets, TLC

CONSTANTS
    Controllers,          \* the metadata quorum's voters
    Brokers,              \* brokers, also the partition's replicas
    None,                 \* "no broker"
    MaxTerm,              \* bound on Raft terms (elections)
    MaxLogLen,            \* bound on metadata log length
    VoteChecksLog, BrokersReadCommitted

ASSUME None \notin Brokers
ASSUME VoteChecksLog \in BOOLEAN /\ BrokersReadCommitted \in BOOLEAN

VARIABLES
    term,        \* [Controllers -> Nat]: current Raft term
    isLeader,    \* [Controllers -> BOOLEAN]: leader of its current term
    mlog,        \* [Controllers -> Seq([term, st])]: the metadata log
    commitIdx,   \* [Controllers -> Nat]: commit index known to the controller
    bview,       \* [Brokers -> [idx, st]]: metadata a broker applied last
    committed,   \* ghost: the longest committed prefix seen so far
    seen         \* ghost: every [epoch, leader] some broker ever applied

vars == <<term, isLeader, mlog, commitIdx, bview, committed, seen>>

Quorums == {Q \in SUBSET Controllers : 2 * Cardinality(Q) > Cardinality(Controllers)}
MaxOf(S) == CHOOSE x \in S : \A y \in S : x >= y
Last(s) == s[Len(s)]

\* The partition and fencing state before any record.
InitSt == [leader |-> None, epoch |-> 0, isr |-> Brokers, fenced |-> {}]
State(c) == IF mlog[c] = <<>> THEN InitSt ELSE Last(mlog[c]).st
LastTerm(c) == IF mlog[c] = <<>> THEN 0 ELSE Last(mlog[c]).term
UpToDate(c, q) ==
    \/ LastTerm(c) > LastTerm(q)
    \/ LastTerm(c) = LastTerm(q) /\ Len(mlog[c]) >= Len(mlog[q])

Init ==
    /\ term = [c \in Controllers |-> 0]
    /\ isLeader = [c \in Controllers |-> FALSE]
    /\ mlog = [c \in Controllers |-> <<>>]
    /\ commitIdx = [c \in Controllers |-> 0]
    /\ bview = [b \in Brokers |-> [idx |-> 0, st |-> InitSt]]
    /\ committed = <<>>
    /\ seen = {}

-----------------------------------------------------------------------------
(* Raft layer *)

\* Controller c campaigns and wins the votes of quorum Q; as a new leader it
\* appends a leader-change record (KRaft's LeaderChangeMessage) so it can
\* commit in its own term.
RaftElection(c) ==
    \E Q \in Quorums :
        LET newTerm == MaxOf({term[q] : q \in Q}) + 1 IN
        /\ c \in Q
        /\ newTerm <= MaxTerm
        /\ Len(mlog[c]) < MaxLogLen
        /\ \A q \in Q : VoteChecksLog => UpToDate(c, q)
        /\ term' = [x \in Controllers |-> IF x \in Q THEN newTerm ELSE term[x]]
        /\ isLeader' = [x \in Controllers |-> IF x \in Q THEN x = c ELSE isLeader[x]]
        /\ mlog' = [mlog EXCEPT ![c] = Append(@, [term |-> newTerm, st |-> State(c)])]
        /\ UNCHANGED <<commitIdx, bview, committed, seen>>

\* AppendEntries from leader c to controller d (d adopts the leader's log
\* and term; its commit index matters only once it leads, and then it
\* re-learns it by committing in its own term).
RaftAppendEntries(c, d) ==
    /\ isLeader[c] /\ d # c
    /\ term[d] <= term[c]
    /\ mlog[d] # mlog[c] \/ term[d] # term[c]
    /\ mlog' = [mlog EXCEPT ![d] = mlog[c]]
    /\ term' = [term EXCEPT ![d] = term[c]]
    /\ isLeader' = [isLeader EXCEPT ![d] = FALSE]
    /\ UNCHANGED <<commitIdx, bview, committed, seen>>

\* Leader c commits index i: an entry of its own term on a quorum.
RaftAdvanceCommit(c) ==
    /\ isLeader[c]
    /\ \E i \in (commitIdx[c] + 1)..Len(mlog[c]) :
        /\ mlog[c][i].term = term[c]
        /\ \E Q \in Quorums : \A q \in Q :
              Len(mlog[q]) >= i /\ SubSeq(mlog[q], 1, i) = SubSeq(mlog[c], 1, i)
        /\ commitIdx' = [commitIdx EXCEPT ![c] = i]
        /\ committed' = IF i > Len(committed) THEN SubSeq(mlog[c], 1, i) ELSE committed
    /\ UNCHANGED <<term, isLeader, mlog, bview, seen>>

-----------------------------------------------------------------------------
(* The metadata state machine, run by the active controller *)

\* Append a metadata record computed from the leader's latest (possibly
\* uncommitted) image, as KRaft's controller does.
AppendRecord(c, st) ==
    /\ isLeader[c]
    /\ Len(mlog[c]) < MaxLogLen
    /\ mlog' = [mlog EXCEPT ![c] = Append(@, [term |-> term[c], st |-> st])]
    /\ UNCHANGED <<term, isLeader, commitIdx, bview, committed, seen>>

\* Broker b missed its heartbeats: fence it, drop it from the ISR (the last
\* member stays), and if it led the partition elect a live ISR member or
\* leave the partition offline; a leader change bumps the leader epoch.
ControllerFenceBroker(c, b) ==
    LET st == State(c)
        isr == IF st.isr = {b} THEN st.isr ELSE st.isr \ {b}
        fenced == st.fenced \cup {b}
        cands == IF st.leader = b THEN isr \ fenced ELSE {st.leader}
    IN /\ b \notin st.fenced
       /\ \E nl \in (IF cands = {} THEN {None} ELSE cands) :
             AppendRecord(c, [leader |-> nl,
                              epoch |-> IF nl = st.leader THEN st.epoch ELSE st.epoch + 1,
                              isr |-> isr, fenced |-> fenced])

\* Broker b heartbeats again.
ControllerUnfenceBroker(c, b) ==
    LET st == State(c) IN
    /\ b \in st.fenced
    /\ AppendRecord(c, [st EXCEPT !.fenced = @ \ {b}])

\* Elect a live ISR member for an offline partition.
ControllerElectLeader(c, b) ==
    LET st == State(c) IN
    /\ st.leader = None
    /\ b \in st.isr \ st.fenced
    /\ AppendRecord(c, [st EXCEPT !.leader = b, !.epoch = @ + 1])

-----------------------------------------------------------------------------
(* Brokers *)

\* Broker b fetches the metadata log from controller c, which believes it
\* leads (it may be deposed), and applies it up to the commit index (or, as
\* a negative control, up to its end).
BrokerFetchMetadata(b, c) ==
    LET idx == IF BrokersReadCommitted THEN commitIdx[c] ELSE Len(mlog[c]) IN
    /\ isLeader[c]
    /\ idx > bview[b].idx
    /\ LET st == mlog[c][idx].st IN
       /\ bview' = [bview EXCEPT ![b] = [idx |-> idx, st |-> st]]
       /\ seen' = IF st.leader = None THEN seen
                  ELSE seen \cup {[epoch |-> st.epoch, leader |-> st.leader]}
    /\ UNCHANGED <<term, isLeader, mlog, commitIdx, committed>>

-----------------------------------------------------------------------------
Next ==
    \/ \E c \in Controllers :
          \/ RaftElection(c)
          \/ RaftAdvanceCommit(c)
          \/ \E d \in Controllers : RaftAppendEntries(c, d)
          \/ \E b \in Brokers :
                \/ ControllerFenceBroker(c, b)
                \/ ControllerUnfenceBroker(c, b)
                \/ ControllerElectLeader(c, b)
    \/ \E b \in Brokers, c \in Controllers : BrokerFetchMetadata(b, c)

Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(* Properties *)

TypeOK ==
    /\ \A c \in Controllers : commitIdx[c] <= Len(mlog[c]) /\ Len(mlog[c]) <= MaxLogLen
    /\ \A b \in Brokers : bview[b].st.leader \in Brokers \cup {None}

\* Raft: one leader per term.
AtMostOneControllerPerTerm ==
    \A c, d \in Controllers : (isLeader[c] /\ isLeader[d] /\ term[c] = term[d]) => c = d

\* No two brokers were ever told they lead the partition in the same epoch.
AtMostOneLeaderPerEpoch ==
    \A p, q \in seen : p.epoch = q.epoch => p.leader = q.leader

\* Committed metadata is never lost: every committed record is still held
\* by a quorum, and every controller's committed prefix agrees with it.
CommittedNeverLost ==
    /\ \A i \in 1..Len(committed) :
          \E Q \in Quorums : \A q \in Q : Len(mlog[q]) >= i /\ mlog[q][i] = committed[i]
    /\ \A c \in Controllers :
          /\ commitIdx[c] <= Len(committed)
          /\ SubSeq(mlog[c], 1, commitIdx[c]) = SubSeq(committed, 1, commitIdx[c])

\* Leader epochs never decrease along a log; a fenced broker never leads.
EpochsGrowAlongLog ==
    \A c \in Controllers : \A i \in 1..Len(mlog[c]) :
        /\ mlog[c][i].st.leader \notin mlog[c][i].st.fenced
        /\ i > 1 => mlog[c][i - 1].st.epoch <= mlog[c][i].st.epoch

\* A broker's view of the leader epoch only grows.
BrokerEpochsGrow ==
    [][\A b \in Brokers : bview'[b].st.epoch >= bview[b].st.epoch]_vars

Symmetry == Permutations(Controllers) \cup Permutations(Brokers)
=============================================================================
