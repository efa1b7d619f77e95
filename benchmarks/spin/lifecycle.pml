/*
 * The Kademlia node lifecycle's shape in Promela, for one comparison only: how many distinct
 * states per second Spin explores against kadspec's explorer (benchmarks/explorer_bench.py,
 * section "spin"). It is NOT a translation of kadspec's model and proves nothing about the
 * protocol: the two state spaces differ, so only the rates are compared.
 *
 * What it has, as kadspec's star scenarios do: a bootstrap server (node 0) and NODES-1 joiners
 * with 4-bit IDs, one FIFO channel per ordered pair; a joiner starts, dials its bootstrap peer,
 * both sides identify, a server peer enters the table; a node with a peer runs its self-lookup
 * (FIND_NODE to the closest unasked peers seen, at most ALPHA in flight, dialing a peer it is
 * not connected to, done when the K closest seen have answered); a reply's responder enters
 * the table; node 1 then looks up its key and sends ADD_PROVIDER to the K closest that
 * answered. Nodes act one step at a time in any order (every interleaving is explored).
 *
 *   spin -a -DNODES=4 lifecycle.pml && gcc -O2 -DNOREDUCE -DSAFETY -o pan pan.c && ./pan
 */

#ifndef NODES
#define NODES 3
#endif
#define K 2
#define ALPHA 2
#define KEY 8                       /* the key is the bootstrap server's ID, as in a star */
#define BIT(p) (1 << (p))
#define CH(a, b) net[(a) * NODES + (b)]

mtype = { IDENTIFY, FIND_NODE, REPLY, ADD_PROVIDER };

chan net[NODES * NODES] = [4] of { mtype, byte, byte };   /* kind, target, peers (a mask) */

byte id[NODES];
bool up[NODES];
byte conn[NODES];                   /* masks of peers */
byte table[NODES];
bool busy[NODES];                 /* one lookup at a time */
byte purpose[NODES];                /* 1 self, 2 provide */
byte target[NODES];
byte seen[NODES];
byte inflight[NODES];
byte answered[NODES];
bool self_done[NODES];
byte phase[NODES];                  /* node 1: 1 wanted, 2 looking up, 3 storing, 4 done */
byte stored[NODES];
bool record[NODES];

/* out = the (at most) kk peers of mask closest to tgt by XOR distance */
inline closest(mask, tgt, kk, out) {
    out = 0; n = 0;
    do
    :: n < kk ->
        best = 255; pick = 255; i = 0;
        do
        :: i < NODES ->
            if
            :: (mask & BIT(i)) && !(out & BIT(i)) && (id[i] ^ tgt) < best ->
                best = id[i] ^ tgt; pick = i
            :: else -> skip
            fi;
            i++
        :: else -> break
        od;
        if
        :: pick == 255 -> break
        :: else -> out = out | BIT(pick); n++
        fi
    :: else -> break
    od;
    n = 0; i = 0; best = 0; pick = 0; mask = 0
}

inline connect(a, b) {
    conn[a] = conn[a] | BIT(b); conn[b] = conn[b] | BIT(a);
    CH(a, b)!IDENTIFY, 0, 1; CH(b, a)!IDENTIFY, 0, 1
}

inline receive_from(p) {
    nempty(CH(p, me)) ->
    d_step {
        CH(p, me)?kind, tgt, peers;
        if
        :: kind == IDENTIFY -> table[me] = table[me] | BIT(p)
        :: kind == FIND_NODE ->
            mask = table[me] & ~BIT(p);
            closest(mask, tgt, K, out);
            CH(me, p)!REPLY, tgt, out
        :: kind == REPLY && busy[me] && tgt == target[me] && (inflight[me] & BIT(p)) ->
            inflight[me] = inflight[me] & ~BIT(p);
            answered[me] = answered[me] | BIT(p);
            seen[me] = seen[me] | (peers & ~BIT(me));
            table[me] = table[me] | BIT(p)
        :: kind == ADD_PROVIDER -> record[me] = 1
        :: else -> skip            /* a late reply */
        fi;
        kind = 0; tgt = 0; peers = 0; out = 0
    }
}

proctype Node(byte me) {
    mtype kind; byte tgt, peers, out, p, n, best, pick, i, mask;
end:
    do
    :: !up[me] -> up[me] = 1
    :: up[me] && me != 0 && !(conn[me] & BIT(0)) -> d_step { connect(me, 0) }
    :: up[me] && table[me] != 0 && !self_done[me] && !busy[me] ->
        d_step {
            busy[me] = 1; purpose[me] = 1; target[me] = id[me]; seen[me] = table[me];
            inflight[me] = 0; answered[me] = 0
        }
    :: up[me] && self_done[me] && phase[me] == 1 && !busy[me] ->
        d_step {
            phase[me] = 2; busy[me] = 1; purpose[me] = 2; target[me] = KEY;
            seen[me] = table[me]; inflight[me] = 0; answered[me] = 0
        }
    :: up[me] && busy[me] ->               /* ask the closest unasked peer seen */
        d_step {
            mask = seen[me] & ~answered[me] & ~inflight[me];
            closest(mask, target[me], 1, out);
            i = 0;
            do
            :: i < NODES -> n = n + ((inflight[me] >> i) & 1); i++
            :: else -> break
            od;
            i = 0;
            if
            :: out != 0 && n < ALPHA ->
                p = 0;
                do
                :: !(out & BIT(p)) -> p++
                :: else -> break
                od;
                if
                :: !(conn[me] & BIT(p)) -> connect(me, p)
                :: else -> skip
                fi;
                CH(me, p)!FIND_NODE, target[me], 0;
                inflight[me] = inflight[me] | BIT(p)
            :: else -> skip
            fi;
            out = 0; n = 0; p = 0
        }
    :: up[me] && busy[me] ->               /* done: the K closest seen have answered */
        d_step {
            mask = seen[me];
            closest(mask, target[me], K, out);
            if
            :: (out & answered[me]) == out && inflight[me] == 0 ->
                busy[me] = 0;
                if
                :: purpose[me] == 1 -> self_done[me] = 1
                :: else -> phase[me] = 3
                fi;
                purpose[me] = 0
            :: else -> skip
            fi;
            out = 0
        }
    :: up[me] && phase[me] == 3 ->           /* ADD_PROVIDER to the K closest that answered */
        d_step {
            mask = answered[me];
            closest(mask, KEY, K, out);
            out = out & ~stored[me];
            if
            :: out == 0 -> phase[me] = 4
            :: else ->
                p = 0;
                do
                :: !(out & BIT(p)) -> p++
                :: else -> break
                od;
                CH(me, p)!ADD_PROVIDER, KEY, 0;
                stored[me] = stored[me] | BIT(p)
            fi;
            out = 0; p = 0
        }
    :: receive_from(0)
    :: receive_from(1)
#if NODES > 2
    :: receive_from(2)
#endif
#if NODES > 3
    :: receive_from(3)
#endif
#if NODES > 4
    :: receive_from(4)
#endif
    od
}

init {
    atomic {
        id[0] = 8; id[1] = 3; id[2] = 5;
#if NODES > 3
        id[3] = 6;
#endif
#if NODES > 4
        id[4] = 13;
#endif
        up[0] = 1; phase[1] = 1;
        byte j = 0;
        do
        :: j < NODES -> run Node(j); j++
        :: else -> break
        od
    }
}
