package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// skb->pkt_type values: PACKET_HOST for frames addressed to this host (a
// buyer's traffic to a seller's router arrives so), PACKET_OUTGOING for
// frames it sends (its own and the ones it forwards).
const (
	packetHost     = 0
	packetOutgoing = 4
)

// Direction is which way a frame crossed the interface.
type Direction uint8

// Directions. The zero value is Outgoing: the buyer's view, what the
// package measured before it also measured incoming traffic.
const (
	// Outgoing frames are classified by destination prefix and destination
	// MAC (the next hop: the seller's router).
	Outgoing Direction = iota
	// Incoming frames addressed to this host are classified by destination
	// prefix and source MAC (the previous hop: the buyer's router).
	Incoming
)

func (d Direction) String() string {
	switch d {
	case Outgoing:
		return "out"
	case Incoming:
		return "in"
	}
	return fmt.Sprintf("Direction(%d)", d)
}

// Filter builds the classic BPF program for the capture socket: keep only
// outgoing frames, and of those one in sampleRate at random (the kernel's
// prandom, SKF_AD_RANDOM, modulo N), truncated to snapLen bytes. Sampling
// in the kernel means the frames not sampled never reach the ring, so the
// cost in user space falls with N.
func Filter(sampleRate, snapLen int) ([]bpf.RawInstruction, error) {
	return DirectionFilter(Outgoing, sampleRate, snapLen)
}

// DirectionFilter is Filter for frames of direction d: outgoing ones, or
// incoming ones addressed to this host (not broadcast, multicast or, in
// promiscuous mode, other hosts' frames).
func DirectionFilter(d Direction, sampleRate, snapLen int) ([]bpf.RawInstruction, error) {
	var pktType uint32
	switch d {
	case Outgoing:
		pktType = packetOutgoing
	case Incoming:
		pktType = packetHost
	default:
		return nil, fmt.Errorf("capture: unknown direction %d", d)
	}
	if sampleRate < 1 {
		return nil, fmt.Errorf("capture: sample rate %d: want 1-in-N with N >= 1", sampleRate)
	}
	if snapLen < 64 || snapLen > 65535 {
		return nil, fmt.Errorf("capture: snap length %d: want 64 to 65535 bytes (headers must fit)", snapLen)
	}
	// The last instruction drops (keeps 0 bytes); the one before keeps
	// snapLen bytes.
	var prog []bpf.Instruction
	if sampleRate == 1 {
		prog = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: pktType, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(snapLen)},
			bpf.RetConstant{Val: 0},
		}
	} else {
		prog = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: pktType, SkipFalse: 4},
			bpf.LoadExtension{Num: bpf.ExtRand},
			bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(sampleRate)},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(snapLen)},
			bpf.RetConstant{Val: 0},
		}
	}
	return assemble(prog)
}

// dropAll is the filter of a paused socket: nothing reaches its ring.
func dropAll() ([]bpf.RawInstruction, error) {
	return assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
}

func assemble(prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("capture: assemble filter: %w", err)
	}
	return raw, nil
}
