package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ordersync/ordersync/pkg/dispatch"
)

// validateCmd runs `worker validate args...` with stdin and returns its output and error.
func validateCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runValidate(args, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

func writeEvents(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every seed event is valid, its channel inferred from its request, its key the one Prepare
// derives.
func TestValidateSeeds(t *testing.T) {
	dir := t.TempDir()
	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	var files, want []string
	for _, id := range dispatch.ChannelIDs() {
		value := dispatch.SeedEvents()[id]
		ch, _ := reg.ByID(id)
		env, err := dispatch.DecodeEnvelope(value, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ch.Prepare(env)
		if err != nil {
			t.Fatal(err)
		}
		f := writeEvents(t, dir, id+".json", string(value))
		files = append(files, f)
		want = append(want, fmt.Sprintf("%s: ok %s event_id=%q idempotency_key=%q", f, id, p.EventID, p.IdempotencyKey))
	}
	want = append(want, "5 event(s): 5 valid, 0 invalid")
	out, err := validateCmd(t, "", files...)
	if err != nil {
		t.Fatalf("validate seeds: %v\n%s", err, out)
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// compact is a seed event on one line.
func compact(t *testing.T, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, dispatch.SeedEvents()[id]); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestValidateNDJSON(t *testing.T) {
	omni := compact(t, "omni-saas")
	lines := []string{
		omni,
		"",
		strings.Replace(omni, `"price":"100"`, `"price":"-1"`, 1),
		`{"event_id":"e-3","request":{"shop":"x"}}`,
		`{"event_id":"  ","request":{}}`,
		`[1]`,
		strings.Replace(compact(t, "mos-haiding"), `"out_refund_no":"20211001231232",`, ``, 1),
		compact(t, "mos-haiding") + "\r", // a CRLF line
	}
	f := writeEvents(t, t.TempDir(), "events.ndjson", strings.Join(lines, "\n")+"\n")
	out, err := validateCmd(t, "", f)
	want := []string{
		f + `:1: ok omni-saas event_id="seed-omni-saas-0001" idempotency_key="REQ-3436967"`,
		f + `:3: invalid omni-saas event_id="seed-omni-saas-0001": request.goods_details[0].price: must not be negative`,
		f + `:4: invalid ? event_id="e-3": request (shop) names no channel's parameters: pass --channel`,
		f + `:5: invalid ?: event_id: required`,
		f + `:6: invalid ?: value is not a JSON object`,
		f + `:7: invalid mos-haiding event_id="seed-mos-haiding-0001": request.order_sync_request.refund_order.out_refund_no: required`,
		f + `:8: ok mos-haiding event_id="seed-mos-haiding-0001" idempotency_key="refund:20211001231232"`,
		"7 event(s): 2 valid, 5 invalid",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err == nil || err.Error() != "validate: 5 of 7 event(s) invalid" {
		t.Errorf("error %v, want 5 of 7 invalid", err)
	}
}

func TestValidateOptions(t *testing.T) {
	omni := string(dispatch.SeedEvents()["omni-saas"])
	for _, c := range []struct {
		name    string
		stdin   string
		args    []string
		want    string // a line of the output or the error
		wantErr bool
	}{
		{"stdin, one event", omni, []string{"-"}, `-: ok omni-saas event_id="seed-omni-saas-0001" idempotency_key="REQ-3436967"`, false},
		{"stdin as NDJSON", compact(t, "omni-saas") + "\n" + compact(t, "diantao-tripartite") + "\n", []string{"--ndjson", "-"},
			`-:2: ok diantao-tripartite event_id="seed-diantao-tripartite-0001" idempotency_key="543125:true"`, false},
		{"channel given", omni, []string{"--channel", "omni-saas", "-"}, `-: ok omni-saas`, false},
		{"the wrong channel", omni, []string{"--channel", "tmall-aliauto", "-"},
			`-: invalid tmall-aliauto event_id="seed-omni-saas-0001": request.goods_details: unknown field`, true},
		{"an unknown channel", omni, []string{"--channel", "ebay", "-"}, `--channel: unknown channel "ebay"`, true},
		{"over the size limit", omni, []string{"--max-bytes", "100", "-"},
			fmt.Sprintf(`-: invalid ?: value is %d bytes, more than the 100 allowed`, len(omni)), true},
		{"an envelope key overrides", strings.Replace(omni, `"event_id"`, `"idempotency_key":"K-9","event_id"`, 1), []string{"-"},
			`idempotency_key="K-9"`, false},
		{"no file", "", nil, "name a FILE", true},
		{"a missing file", "", []string{"/nonexistent/e.json"}, "no such file", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := validateCmd(t, c.stdin, c.args...)
			if (err != nil) != c.wantErr {
				t.Errorf("error %v, want error %v\n%s", err, c.wantErr, out)
			}
			all := out
			if err != nil {
				all += err.Error()
			}
			if !strings.Contains(all, c.want) {
				t.Errorf("output:\n%s\nwant it to contain %q", all, c.want)
			}
		})
	}
}
