//go:build linux

package main

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotDone plots, for every run that keep accepts, the fraction of its hosts
// done over time since the run started, as a step line, with T_min as a
// vertical line.
func plotDone(r *report, path string, keep func(runResult) bool) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s agents, %s, origin %s, peers %s", r.Options["agents"], r.Options["size"], r.Options["origin_rate"], r.Options["peer_rate"])
	p.X.Label.Text = "seconds since the release was published"
	p.Y.Label.Text = "fraction of agents done"
	p.Y.Min, p.Y.Max = 0, 1.02
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(8)
	p.Add(plotter.NewGrid())
	for i, run := range r.Runs {
		if !keep(run) {
			continue
		}
		line, err := plotter.NewLine(doneSteps(run))
		if err != nil {
			return err
		}
		line.StepStyle = plotter.PostStep
		line.Color = palette[i%len(palette)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		name := run.System
		if run.Scenario != "base" {
			name += " (" + run.Scenario + ")"
		}
		p.Legend.Add(name, line)
	}
	tmin, err := plotter.NewLine(plotter.XYs{{X: r.TMin.Seconds(), Y: 0}, {X: r.TMin.Seconds(), Y: 1.02}})
	if err != nil {
		return err
	}
	tmin.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	tmin.Color = color.Gray{Y: 90}
	p.Add(tmin)
	p.Legend.Add("T_min", tmin)
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// doneSteps is the fraction of the run's hosts done at each completion.
func doneSteps(run runResult) plotter.XYs {
	var times []float64
	for _, h := range run.Hosts {
		if h.Done > 0 {
			times = append(times, h.Done.Seconds())
		}
	}
	slices.Sort(times)
	xy := plotter.XYs{{X: 0, Y: 0}}
	n := float64(max(len(run.Hosts), 1))
	for i, t := range times {
		xy = append(xy, plotter.XY{X: t, Y: float64(i+1) / n})
	}
	if len(times) > 0 {
		xy = append(xy, plotter.XY{X: run.Elapsed.Seconds(), Y: float64(len(times)) / n})
	}
	return xy
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}
