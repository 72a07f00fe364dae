package settle

import (
	"math/big"
)

// divRound is num/den rounded half away from zero (den > 0). It is the one
// place billing rounds: every money line is a single exact fraction of
// integers, rounded once here, never through floats.
func divRound(num, den *big.Int) int64 {
	v, _ := divRoundOK(num, den)
	return v
}

// divRoundOK is divRound that says whether the result fits int64.
func divRoundOK(num, den *big.Int) (int64, bool) {
	var q, r big.Int
	q.QuoRem(num, den, &r) // truncated toward zero; r has num's sign
	r.Abs(&r)
	r.Lsh(&r, 1)
	if r.Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(&q, big.NewInt(1))
		} else {
			q.Add(&q, big.NewInt(1))
		}
	}
	return q.Int64(), q.IsInt64()
}

// fraction computes round(product(nums) / product(dens)).
func fraction(nums []int64, dens []int64) int64 {
	v, _ := fractionOK(nums, dens)
	return v
}

// fractionOK is fraction that says whether the result fits int64.
func fractionOK(nums []int64, dens []int64) (int64, bool) {
	n, d := big.NewInt(1), big.NewInt(1)
	var x big.Int
	for _, v := range nums {
		n.Mul(n, x.SetInt64(v))
	}
	for _, v := range dens {
		d.Mul(d, x.SetInt64(v))
	}
	return divRoundOK(n, d)
}
