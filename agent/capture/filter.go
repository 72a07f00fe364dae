package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// packetOutgoing is PACKET_OUTGOING, skb->pkt_type of frames this host
// sends (its own and the ones it forwards).
const packetOutgoing = 4

// Filter builds the classic BPF program for the capture socket: keep only
// outgoing frames, and of those one in sampleRate at random (the kernel's
// prandom, SKF_AD_RANDOM, modulo N), truncated to snapLen bytes. Sampling
// in the kernel means the frames not sampled never reach the ring, so the
// cost in user space falls with N.
func Filter(sampleRate, snapLen int) ([]bpf.RawInstruction, error) {
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
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(snapLen)},
			bpf.RetConstant{Val: 0},
		}
	} else {
		prog = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipFalse: 4},
			bpf.LoadExtension{Num: bpf.ExtRand},
			bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(sampleRate)},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 1},
			bpf.RetConstant{Val: uint32(snapLen)},
			bpf.RetConstant{Val: 0},
		}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("capture: assemble filter: %w", err)
	}
	return raw, nil
}
