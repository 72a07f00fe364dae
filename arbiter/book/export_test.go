package book

// For the external tests (package book_test), which may import settle:
// settle imports book, so book's own tests cannot.

// BenchDurable runs BenchmarkMatchDurable's buys through a Book with the
// options opts makes (benchDurable).
var BenchDurable = benchDurable

// BenchStart is the benchmark book's clock; BenchBuyers its buyers, AS
// 70000 and up.
var BenchStart = benchStart

const BenchBuyers = benchBuyers
