// Package units implements the exchange's quantities: bandwidth in bits per
// second and money in micro-units, with exact (integer-only) parsing and
// formatting, plus price computations.
package units
