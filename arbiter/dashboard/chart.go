package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/shared/units"
)

// The charts are inline SVG drawn here, so the page needs no script and no
// chart library.

type point struct {
	T time.Time
	V int64
}

type series struct {
	Name, Class string
	Points      []point
}

type chartLine struct {
	Name, Class string
	Points      string // the polyline's points attribute
}

type chart struct {
	W, H          int
	Left, Top     int
	PlotW, PlotH  int
	Lines         []chartLine
	CapY          int // y of the committed capacity line
	YMax          string
	YMid          string
	XFrom, XTo    string
	CapacityLabel string
	Empty         bool
}

const (
	chartW, chartH       = 640, 200
	chartLeft, chartTop  = 64, 12
	chartRight, chartBot = 12, 28
)

// lineChart plots the series over [from, to) against the committed
// capacity; the y axis leaves room above the higher of the two.
func lineChart(from, to time.Time, capacity int64, ss []series) chart {
	c := chart{W: chartW, H: chartH, Left: chartLeft, Top: chartTop, PlotW: chartW - chartLeft - chartRight, PlotH: chartH - chartTop - chartBot}
	top := capacity
	n := 0
	for _, s := range ss {
		for _, p := range s.Points {
			top = max(top, p.V)
			n++
		}
	}
	c.Empty = n == 0
	yMax := niceCeil(float64(top) * 1.1)
	if yMax <= 0 {
		yMax = 1
	}
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 {
		f := t.Sub(from).Seconds() / span
		return float64(c.Left) + math.Max(0, math.Min(1, f))*float64(c.PlotW)
	}
	y := func(v int64) float64 { return float64(c.Top) + (1-float64(v)/yMax)*float64(c.PlotH) }
	for _, s := range ss {
		if len(s.Points) == 0 {
			continue
		}
		var b strings.Builder
		for i, p := range s.Points {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(x(p.T), 'f', 1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(y(p.V), 'f', 1, 64))
		}
		c.Lines = append(c.Lines, chartLine{Name: s.Name, Class: s.Class, Points: b.String()})
	}
	c.CapY = int(math.Round(y(capacity)))
	c.YMax = units.Bandwidth(int64(yMax)).String()
	c.YMid = units.Bandwidth(int64(yMax / 2)).String()
	c.XFrom, c.XTo = from.UTC().Format("2006-01-02 15:04"), to.UTC().Format("2006-01-02 15:04")
	c.CapacityLabel = "committed " + units.Bandwidth(capacity).String()
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// latencyColour runs from green (1 ms or less) through yellow to red
// (200 ms or more) on a log scale: the difference between 5 and 10 ms
// matters as much as between 50 and 100.
func latencyColour(us int64) string {
	f := (math.Log10(math.Max(float64(us), 1000)) - 3) / (math.Log10(200000) - 3)
	return ramp(f)
}

// lossColour: green at no loss, red at 10% or more (log scale from 0.01%).
func lossColour(ppm int32) string {
	if ppm <= 0 {
		return ramp(0)
	}
	f := (math.Log10(math.Max(float64(ppm), 100)) - 2) / (math.Log10(100000) - 2)
	return ramp(f)
}

// ramp maps 0..1 to green, yellow, red.
func ramp(f float64) string {
	f = math.Max(0, math.Min(1, f))
	var r, g float64
	if f < 0.5 {
		r, g = 2*f, 1
	} else {
		r, g = 1, 2*(1-f)
	}
	return fmt.Sprintf("#%02x%02x%02x", int(40+r*200), int(40+g*160), 60)
}

func fmtMicros(us int64) string {
	return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) + " ms"
}

func fmtPPM(ppm int32) string {
	return strconv.FormatFloat(float64(ppm)/1e4, 'f', 2, 64) + "%"
}

// fmtDuration is "7d", "1h 30m", "45s": whole units, largest first.
func fmtDuration(d time.Duration) string {
	d = d.Truncate(time.Second)
	if d <= 0 {
		return "0s"
	}
	var parts []string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+u.name)
			d -= n * u.d
		}
	}
	return strings.Join(parts, " ")
}

var funcs = template.FuncMap{
	"bw":    func(b int64) string { return units.Bandwidth(b).String() },
	"money": func(m int64) string { return units.Money(m).String() },
	"time":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"ms":    fmtMicros,
	"pct":   fmtPPM,
	"dur":   fmtDuration,
	"add":   func(a, b int) int { return a + b },
	"sub":   func(a, b int) int { return a - b },
	"div2":  func(a int) int { return a / 2 },
	"neg":   func(a int64) bool { return a < 0 },
	"cellX": func(i int) int { return heatLeft + i*heatCellW + heatCellW/2 },
	"cellY": func(i int) int { return heatTop + i*heatCellH + heatCellH/2 + 4 },
}
