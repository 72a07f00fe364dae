package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/config"
)

type listen struct {
	GRPC    string `yaml:"grpc_addr"`
	Metrics string `yaml:"metrics_addr"`
}

type router struct {
	Name    string     `yaml:"name"`
	Address netip.Addr `yaml:"address"`
	ASN     uint32     `yaml:"asn"`
}

// testConfig has no Validate method.
type testConfig struct {
	Listen   listen            `yaml:"listen"`
	Timeout  time.Duration     `yaml:"timeout"`
	Port     uint16            `yaml:"port"`
	Debug    bool              `yaml:"debug"`
	Routers  []router          `yaml:"routers"`
	Labels   map[string]string `yaml:"labels"`
	Interval time.Duration     // key "interval", yaml's default name
}

func defaults() testConfig {
	return testConfig{
		Listen:  listen{GRPC: ":7443", Metrics: ":9469"},
		Timeout: 5 * time.Second,
		Port:    179,
	}
}

// validated adds semantic checks to testConfig.
type validated struct {
	Name       string `yaml:"name"`
	testConfig `yaml:",inline"`
}

func (c *validated) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, config.Required("name"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Errorf("timeout", "must be positive, got %s", c.Timeout))
	}
	for i, r := range c.Routers {
		errs = append(errs, config.Prefix(fmt.Sprintf("routers[%d]", i), r.validate()))
	}
	return errors.Join(errs...)
}

var errPrivateASN = errors.New("private ASN")

func (r router) validate() error {
	var errs []error
	if !r.Address.IsValid() {
		errs = append(errs, config.Required("address"))
	}
	if r.ASN >= 64512 && r.ASN <= 65534 {
		errs = append(errs, config.Errorf("asn", "%d: %w", r.ASN, errPrivateASN))
	}
	return errors.Join(errs...)
}

const name = "/etc/bwx/arbiter.yaml"

func TestDecodeOK(t *testing.T) {
	data := `# bwx arbiter
listen:
  grpc_addr: "[::]:7443"
timeout: 1m30s
routers:
  - name: r1
    address: 192.0.2.1
    asn: 64496
labels: {site: fra1}
interval: 250ms
debug: yes
`
	cfg := defaults()
	if err := config.Decode(name, []byte(data), &cfg); err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Listen.GRPC = "[::]:7443"
	want.Timeout = 90 * time.Second
	want.Routers = []router{{Name: "r1", Address: netip.MustParseAddr("192.0.2.1"), ASN: 64496}}
	want.Labels = map[string]string{"site": "fra1"}
	want.Interval = 250 * time.Millisecond
	want.Debug = true
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string // lines of err.Error()
	}{{
		name: "unknown top-level key",
		data: "listen:\n  grpc_addr: x\nlisten_addr: y\n",
		want: []string{name + ":3: listen_addr: unknown key"},
	}, {
		name: "unknown nested key",
		data: "timeout: 5s\nlisten:\n  grpc_addr: x\n  grpc: y\n",
		want: []string{name + ":4: listen.grpc: unknown key"},
	}, {
		name: "unknown key in list item",
		data: "routers:\n  - name: a\n  - name: b\n    adress: 192.0.2.1\n",
		want: []string{name + ":4: routers[1].adress: unknown key"},
	}, {
		name: "unknown key in flow mapping",
		data: "listen: {grpc_addr: x, grpc: y}\n",
		want: []string{name + ":1: listen.grpc: unknown key"},
	}, {
		name: "several problems",
		data: "port: abc\nfoo: 1\nlisten:\n  bar: 2\n",
		want: []string{
			name + `:1: port: expected a non-negative integer, got "abc"`,
			name + ":2: foo: unknown key",
			name + ":4: listen.bar: unknown key",
		},
	}, {
		name: "wrong type: string for integer",
		data: "\nport: \"179\"\n",
		want: []string{name + `:2: port: expected a non-negative integer, got "179"`},
	}, {
		name: "integer out of range",
		data: "port: 70000\n",
		want: []string{name + ":1: port: 70000 is out of range (0 to 65535)"},
	}, {
		// yaml alone truncates these (settle.fee_bp: 2.5 was 2).
		name: "fraction for integer",
		data: "listen: {}\nport: 2.5\n",
		want: []string{name + ":2: port: expected an integer, got 2.5"},
	}, {
		name: "exponent for integer, in a list item",
		data: "routers:\n  - name: r1\n    asn: 6.45e4\n",
		want: []string{name + ":3: routers[0].asn: expected an integer, got 6.45e4"},
	}, {
		name: "float out of range for integer, reported once",
		data: "port: 1e30\n",
		want: []string{name + ":1: port: expected an integer, got 1e30"},
	}, {
		name: "infinity for integer",
		data: "port: .inf\n",
		want: []string{name + ":1: port: expected an integer, got .inf"},
	}, {
		name: "fraction through an alias, with another problem before it",
		data: "foo: 1\nlisten: {grpc_addr: &n 1.5}\nport: *n\n",
		want: []string{name + ":1: foo: unknown key", name + ":3: port: expected an integer, got 1.5"},
	}, {
		name: "wrong type: list for string",
		data: "listen:\n  metrics_addr: [a, b]\n",
		want: []string{name + ":2: listen.metrics_addr: expected a string, got a list"},
	}, {
		name: "wrong type: scalar for mapping",
		data: "listen: localhost\n",
		want: []string{name + `:1: listen: expected a mapping, got "localhost"`},
	}, {
		name: "wrong type: mapping for list",
		data: "routers:\n  name: r1\n",
		want: []string{name + ":1: routers: expected a list, got a mapping"},
	}, {
		name: "wrong type: bool",
		data: "debug: maybe\n",
		want: []string{name + `:1: debug: expected true or false, got "maybe"`},
	}, {
		name: "wrong type in list item",
		data: "routers:\n  - name: r1\n    asn: sixty-four-thousand\n",
		want: []string{name + `:3: routers[0].asn: expected a non-negative integer, got "sixty-four-thousand"`},
	}, {
		name: "bad duration",
		data: "timeout: 5x\n",
		want: []string{name + `:1: timeout: invalid duration "5x": use a number with a unit, such as "30s", "5m" or "1h30m"`},
	}, {
		name: "duration without unit",
		data: "listen: {}\ninterval: 5\n",
		want: []string{name + `:2: interval: invalid duration 5: a unit is required, such as "5s"`},
	}, {
		name: "bad text value (netip.Addr)",
		data: "routers:\n  - name: r1\n    address: 192.0.2.1\n  - name: r2\n    address: 192.0.2.x\n",
		want: []string{name + `:5: routers[1].address: ParseAddr("192.0.2.x"): unexpected character (at "x")`},
	}, {
		name: "duplicate key",
		data: "port: 1\nlisten: {}\nport: 2\n",
		want: []string{name + ":3: port: duplicate key (first set on line 1)"},
	}, {
		name: "syntax error",
		data: "timeout: 5s\nlisten: grpc_addr: x\n",
		want: []string{name + ":2: invalid YAML: mapping values are not allowed in this context"},
	}, {
		name: "tab indentation",
		data: "listen:\n  grpc_addr: x\n\tmetrics_addr: y\n",
		want: []string{name + ":3: invalid YAML: indented with a tab; YAML needs spaces"},
	}, {
		name: "multiple documents",
		data: "port: 1\n---\nport: 2\n",
		want: []string{name + ":2: a second YAML document; the file must hold exactly one"},
	}, {
		name: "top level is not a mapping",
		data: "- port: 1\n",
		want: []string{name + ":1: expected a mapping, got a list"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults()
			err := config.Decode(name, []byte(tt.data), &cfg)
			if err == nil {
				t.Fatalf("no error; decoded %+v", cfg)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n got: %s\nwant: %s", got, want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{{
		name: "ok",
		data: "name: fra1\nrouters:\n  - address: 192.0.2.1\n",
	}, {
		name: "missing required key has no line",
		data: "timeout: 5s\n",
		want: []string{name + ": name: is required"},
	}, {
		name: "bad value has the line of its key",
		data: "name: fra1\n\ntimeout: -5s\n",
		want: []string{name + ":3: timeout: must be positive, got -5s"},
	}, {
		name: "list index",
		data: "name: fra1\nrouters:\n  - address: 192.0.2.1\n  - address: 192.0.2.2\n    asn: 65000\n",
		want: []string{name + ":5: routers[1].asn: 65000: private ASN"},
	}, {
		name: "missing nested key is reported on its parent's line",
		data: "name: fra1\nrouters:\n  - address: 192.0.2.1\n  - name: r2\n",
		want: []string{name + ":4: routers[1].address: is required"},
	}, {
		name: "several problems",
		data: "timeout: 0s\nrouters:\n  - asn: 65000\n",
		want: []string{
			name + ": name: is required",
			name + ":1: timeout: must be positive, got 0s",
			name + ":3: routers[0].address: is required",
			name + ":3: routers[0].asn: 65000: private ASN",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validated{testConfig: defaults()}
			err := config.Decode(name, []byte(tt.data), &cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; decoded %+v", cfg)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestValidateKeepsWrappedErrors(t *testing.T) {
	cfg := validated{testConfig: defaults(), Name: "x"}
	err := config.Decode(name, []byte("routers:\n  - {address: 192.0.2.1, asn: 65000}\n"), &cfg)
	if !errors.Is(err, errPrivateASN) {
		t.Fatalf("errors.Is(%v, errPrivateASN) = false", err)
	}
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Key != "routers[0].asn" {
		t.Fatalf("got %#v", ce)
	}
}

func TestEmptyKeepsDefaults(t *testing.T) {
	for _, data := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		cfg := defaults()
		if err := config.Decode(name, []byte(data), &cfg); err != nil {
			t.Errorf("%q: %v", data, err)
		}
		if fmt.Sprint(cfg) != fmt.Sprint(defaults()) {
			t.Errorf("%q: defaults changed: %+v", data, cfg)
		}
	}
	// Validation still runs on an empty file.
	cfg := validated{testConfig: defaults()}
	if err := config.Decode(name, nil, &cfg); err == nil || err.Error() != name+": name: is required" {
		t.Errorf("empty file with required key: got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte("timeout: 2s\nlisten:\n  grpc: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaults()
	err := config.Load(path, &cfg)
	if want := path + ":3: listen.grpc: unknown key"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}

	if err := os.WriteFile(path, []byte("timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = defaults()
	if err := config.Load(path, &cfg); err != nil || cfg.Timeout != 2*time.Second {
		t.Errorf("got %v, timeout %s", err, cfg.Timeout)
	}

	missing := filepath.Join(dir, "missing.yaml")
	err = config.Load(missing, &cfg)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	if err := config.Decode(name, []byte("port: 1\n"), defaults()); err == nil {
		t.Error("decoding into a non-pointer did not fail")
	}
	var nilCfg *testConfig
	if err := config.Decode(name, []byte("port: 1\n"), nilCfg); err == nil {
		t.Error("decoding into a nil pointer did not fail")
	}
}

func TestPrefix(t *testing.T) {
	if config.Prefix("a", nil) != nil {
		t.Error("Prefix(nil) != nil")
	}
	err := config.Prefix("peers", errors.Join(config.Errorf("[0].asn", "bad"), errors.New("plain")))
	if got, want := err.Error(), "peers[0].asn: bad\npeers: plain"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
