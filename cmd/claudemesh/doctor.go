package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/mcp"
	"github.com/claudemesh/claudemesh/wire"
)

const doctorHelp = `usage: claudemesh doctor [--json]

Checks, in order, what a Claude Code session started in the current
directory needs, and prints one line per check: ok, warn, fail (with the
fix on the next line) or skip (an earlier failure left nothing to check).
It says a checking hello to the broker with a throwaway key, which the
broker verifies and does not record. It changes nothing.

Exit status 0 when no check failed (warnings do not count), 1 otherwise.
`

// Check statuses.
const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "fail"
	statusSkip = "skip"
)

// Clock skew against the broker: up to skewOK is fine; beyond skewFail
// attestations and receipts are dated wrongly enough to matter.
const (
	skewOK   = 5 * time.Second
	skewFail = 5 * time.Minute
)

// install hints, shared by several fixes.
const (
	fixInstallBinary = "install it: go install github.com/claudemesh/claudemesh/cmd/claudemesh@latest, and put $(go env GOPATH)/bin on the PATH of the shell that starts Claude Code"
	fixRegister      = "claude plugin marketplace add claudemesh/claudemesh && claude plugin install claudemesh@claudemesh, or: claudemesh install"
)

// checkResult is one line of the doctor's report.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctor holds what the checks learn as they go.
type doctor struct {
	getenv func(string) string
	dir    string // the directory a session would start in
	self   string // this binary, symlinks resolved
	onPath string // claudemesh found on PATH, symlinks resolved; "" for none
	cfg    mcp.Config
	cfgErr error
	checks []checkResult
}

func (d *doctor) add(name, status, detail, fix string) {
	d.checks = append(d.checks, checkResult{Name: name, Status: status, Detail: detail, Fix: fix})
}

func runDoctor(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdLine("doctor", doctorHelp, stdout)
	asJSON := c.Bool("json", false, "print the checks as JSON")
	if _, err := c.parse(args); err != nil {
		return err
	}
	d := &doctor{getenv: os.Getenv}
	var err error
	if d.dir, err = os.Getwd(); err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	if self, err := os.Executable(); err == nil {
		d.self, _ = filepath.EvalSymlinks(self)
	}
	d.cfg, d.cfgErr = mcp.ConfigFromEnv(d.getenv)
	d.checkBinary()
	d.checkHome()
	d.checkBroker(ctx)
	d.checkRegistration()
	d.checkHooks()
	d.checkProject()
	d.checkIdentity()

	failed := 0
	for _, r := range d.checks {
		if r.Status == statusFail {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			OK     bool          `json:"ok"`
			Checks []checkResult `json:"checks"`
		}{failed == 0, d.checks}); err != nil {
			return err
		}
	} else {
		for _, r := range d.checks {
			fmt.Fprintf(stdout, "%-4s  %-26s %s\n", r.Status, r.Name, r.Detail)
			if r.Fix != "" {
				fmt.Fprintf(stdout, "      %-26s fix: %s\n", "", r.Fix)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d of %d checks failed", failed, len(d.checks))
	}
	return nil
}

// runs reports whether bin runs: `bin version` exits 0 within a few
// seconds.
func runs(bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			return err
		}
		return fmt.Errorf("%w: %s", err, firstLine(msg))
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// which names bin for messages, saying when it is this binary.
func (d *doctor) which(bin string) string {
	if resolved, err := filepath.EvalSymlinks(bin); err == nil && resolved == d.self {
		return bin + " (this binary)"
	}
	return bin
}

func (d *doctor) checkBinary() {
	const name = "binary on PATH"
	path, err := exec.LookPath("claudemesh")
	if err != nil {
		d.add(name, statusFail, "no claudemesh on PATH; Claude Code starts it by name from the plugin and from project registrations", fixInstallBinary)
		return
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		resolved = path
	}
	d.onPath = resolved
	if err := runs(path); err != nil {
		d.add(name, statusFail, fmt.Sprintf("%s does not run: %v", path, err), fixInstallBinary)
		return
	}
	if d.self != "" && resolved != d.self {
		d.add(name, statusWarn, fmt.Sprintf("claudemesh on PATH is %s, not this binary (%s)", path, d.self),
			"run the one on PATH ("+path+" doctor), or put the one you mean first on PATH")
		return
	}
	d.add(name, statusOK, d.which(path), "")
}

// privateFiles are the files under CLAUDEMESH_HOME that hold a secret.
func privateFiles(home string) []string {
	files := []string{filepath.Join(home, wire.LocalFile)}
	for _, pattern := range []string{"sessions/*/*.json", "meshes/*.json", "broker/credential"} {
		m, _ := filepath.Glob(filepath.Join(home, pattern))
		files = append(files, m...)
	}
	return files
}

func (d *doctor) checkHome() {
	const name = "CLAUDEMESH_HOME"
	home, err := config.Home(d.getenv)
	if err != nil {
		d.add(name, statusFail, err.Error(), "set HOME, or CLAUDEMESH_HOME to a directory of your own")
		return
	}
	fixOwn := "set CLAUDEMESH_HOME to a directory you own and can write, or make this one so: chmod u+rwx " + home
	info, err := os.Stat(home)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		parent := filepath.Dir(home)
		if pi, perr := os.Stat(parent); perr != nil || !pi.IsDir() {
			d.add(name, statusFail, fmt.Sprintf("%s does not exist and cannot be made: %s is not a directory", home, parent), fixOwn)
			return
		}
		d.add(name, statusWarn, home+" does not exist yet; the broker or the first session makes it", "")
		return
	case err != nil:
		d.add(name, statusFail, fmt.Sprintf("%s: %v", home, err), fixOwn)
		return
	case !info.IsDir():
		d.add(name, statusFail, home+" is not a directory, so no key or broker.json can be kept in it", fixOwn)
		return
	}
	f, err := os.CreateTemp(home, ".doctor-*")
	if err != nil {
		d.add(name, statusFail, fmt.Sprintf("%s is not writable: %s", home, pathProblem(home, err)), fixOwn)
		return
	}
	f.Close()
	os.Remove(f.Name())
	var open []string
	for _, p := range privateFiles(home) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			open = append(open, fmt.Sprintf("%s (%04o)", p, fi.Mode().Perm()))
		}
	}
	if len(open) > 0 {
		d.add(name, statusFail, "keys or credentials readable by others: "+strings.Join(open, ", "),
			"chmod 600 each of them (and chmod 700 "+home+")")
		return
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		d.add(name, statusWarn, fmt.Sprintf("%s is mode %04o: others may add or replace files in it", home, perm), "chmod 700 "+home)
		return
	}
	d.add(name, statusOK, fmt.Sprintf("%s (%04o), writable; key files and broker.json private", home, info.Mode().Perm()), "")
}

// brokerURLs returns the brokers a session would use and where that
// choice comes from.
func (d *doctor) brokerURLs() (urls []string, from string) {
	home := d.cfg.Home
	if d.cfg.BrokerURL != "" {
		from = config.EnvBroker
		if d.getenv(config.EnvBroker) == "" {
			from = "the membership of mesh " + d.cfg.Mesh
		}
		return client.SplitURLs(d.cfg.BrokerURL), from
	}
	if info, err := client.ReadLocalInfo(home); err == nil && info.URL != "" {
		return []string{info.URL}, filepath.Join(home, wire.LocalFile)
	}
	return []string{wire.DefaultURL}, "the default: there is no " + filepath.Join(home, wire.LocalFile)
}

func (d *doctor) checkBroker(ctx context.Context) {
	names := []string{"broker reachable", "TLS", "credential accepted", "clock skew"}
	if d.cfgErr != nil {
		d.add(names[0], statusFail, "the session's configuration is invalid: "+d.cfgErr.Error(), "fix the variable it names")
		for _, n := range names[1:] {
			d.add(n, statusSkip, "no configuration to check with", "")
		}
		return
	}
	urls, from := d.brokerURLs()
	for _, u := range urls {
		suffix := ""
		if len(urls) > 1 {
			suffix = " " + u
		}
		d.checkOneBroker(ctx, u, from, suffix)
	}
}

func (d *doctor) checkOneBroker(ctx context.Context, u, from, suffix string) {
	ep, _ := client.LocalEndpoint(d.cfg.Home, u)()
	r, err := client.Check(ctx, client.CheckDial{
		URL: ep.URL, Token: ep.Token, Mesh: d.cfg.Mesh, Member: d.cfg.Member,
		RootCAs: d.cfg.RootCAs, AllowPlaintext: d.cfg.AllowPlaintext, Timeout: 5 * time.Second,
	})
	secure := strings.HasPrefix(ep.URL, "wss://")
	skip := func(names ...string) {
		for _, n := range names {
			d.add(n+suffix, statusSkip, "the broker could not be asked", "")
		}
	}
	var we *wire.Error
	switch {
	case errors.Is(err, client.ErrPlaintext):
		d.add("broker reachable"+suffix, statusFail, fmt.Sprintf("%s (from %s) is refused: %v", ep.URL, from, err),
			"use the broker's wss:// URL, or set "+config.EnvAllowPlaintext+"=1 if the network is trusted")
		skip("TLS", "credential accepted", "clock skew")
		return
	case isTLSError(err):
		d.add("broker reachable"+suffix, statusOK, fmt.Sprintf("%s (from %s) answers, but its TLS handshake failed", ep.URL, from), "")
		d.add("TLS"+suffix, statusFail, err.Error(),
			"set "+config.EnvCA+" to a PEM file of the CA that signed the broker's certificate, or give the broker a certificate for this host name")
		skip("credential accepted", "clock skew")
		return
	case err != nil && !errors.As(err, &we):
		d.add("broker reachable"+suffix, statusFail, fmt.Sprintf("cannot reach %s (from %s): %v", ep.URL, from, err),
			"start the broker: claudemesh broker (or point "+config.EnvBroker+" at yours)")
		skip("TLS", "credential accepted", "clock skew")
		return
	}
	d.add("broker reachable"+suffix, statusOK, fmt.Sprintf("%s (from %s)", ep.URL, from), "")
	switch {
	case secure:
		d.add("TLS"+suffix, statusOK, "the broker's certificate is trusted", "")
	case isLoopback(ep.URL):
		d.add("TLS"+suffix, statusOK, "not needed: ws:// on a loopback address", "")
	default:
		d.add("TLS"+suffix, statusWarn, "plaintext ws:// to another machine ("+config.EnvAllowPlaintext+"=1): names and metadata cross the network unencrypted",
			"serve the broker with --tls-cert and --tls-key and use its wss:// URL")
	}
	if we != nil {
		d.add("credential accepted"+suffix, statusFail, fmt.Sprintf("the broker refused a session of mesh %s: %s (%s)", d.cfg.Mesh, we.Message, we.Code), refusalFix(we.Code, d.cfg.Home))
		d.add("clock skew"+suffix, statusSkip, "the broker refused the hello", "")
		return
	}
	how := "the broker's credential from " + filepath.Join(d.cfg.Home, wire.LocalFile)
	switch {
	case d.cfg.Member != nil:
		how = "this machine's member key"
	case ep.Token == "":
		how = "no credential (the broker needs none)"
	}
	d.add("credential accepted"+suffix, statusOK, fmt.Sprintf("a throwaway key was let in to mesh %s with %s, and not recorded", d.cfg.Mesh, how), "")
	mid := r.Sent.Add(r.Got.Sub(r.Sent) / 2)
	skew := r.ServerTime.Sub(mid)
	detail := fmt.Sprintf("%v against the broker (round trip %v)", skew.Round(time.Millisecond), r.Got.Sub(r.Sent).Round(time.Millisecond))
	fix := "synchronise this machine's clock (and the broker's), e.g. timedatectl set-ntp true"
	switch abs := max(skew, -skew); {
	case abs <= skewOK:
		d.add("clock skew"+suffix, statusOK, detail, "")
	case abs <= skewFail:
		d.add("clock skew"+suffix, statusWarn, detail, fix)
	default:
		d.add("clock skew"+suffix, statusFail, detail+": attestations and receipts are dated wrongly", fix)
	}
}

func isLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return u.Hostname() == "localhost" || strings.HasPrefix(u.Hostname(), "127.") || u.Hostname() == "::1"
}

func isTLSError(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		record   tls.RecordHeaderError
	)
	return err != nil && (errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &record))
}

// refusalFix says what to do about the broker's refusal of a hello.
func refusalFix(code, home string) string {
	switch code {
	case wire.CodeUnauthorized:
		return "the credential in " + filepath.Join(home, wire.LocalFile) + " is not this broker's: run the broker and the sessions as the same user with the same " +
			config.EnvHome + " (restart the broker with it), or join a mesh on a remote broker (claudemesh join)"
	case wire.CodeAttestationRequired, wire.CodeNotMember, wire.CodeMemberRemoved, wire.CodeBadAttestation:
		return "this machine is not a member of the mesh: claudemesh join BROKER_URL CODE with an invite from its owner"
	case wire.CodeBadSignature:
		return "a broker older than this claudemesh refuses the doctor's checking hello: update the broker (sessions may still work)"
	case wire.CodeUnsupportedVersion:
		return "this claudemesh and the broker speak different protocol versions: update the older one"
	case wire.CodeTooManyConnections:
		return "the member has too many connections open: close some sessions, or raise the broker's --max-member-conns"
	}
	return "see PROTOCOL.md for the code " + code
}

// doctorReg is one place that makes Claude Code start claudemesh's MCP
// server for a session in the directory.
type doctorReg struct {
	where   string // user, project, local, plugin
	detail  string // file, or plugin id and settings file
	bin     string // the claudemesh binary it starts; "" when unknown
	ours    bool   // it runs claudemesh mcp
	command string // what it runs, for messages
	remove  string // the command that removes it
}

func (d *doctor) registrations() ([]doctorReg, error) {
	var regs []doctorReg
	state, err := claudecode.StateFile(d.getenv)
	if err != nil {
		return nil, err
	}
	enabled, err := claudecode.EnabledPlugin(d.getenv, d.dir)
	if err != nil {
		return nil, err
	}
	for _, e := range enabled {
		regs = append(regs, doctorReg{where: "plugin", detail: e.ID + " in " + e.File, bin: d.onPath, ours: true,
			command: "claudemesh from PATH, through the plugin's launcher", remove: "claude plugin uninstall " + e.ID})
	}
	server := func(where, remove string, s claudecode.ServerAt) doctorReg {
		r := doctorReg{where: where, detail: s.File, ours: s.Ours, command: strings.Join(append([]string{s.Command}, s.Args...), " "), remove: remove}
		if s.Ours {
			r.bin = s.Command
			if !filepath.IsAbs(s.Command) {
				r.bin, _ = exec.LookPath(s.Command)
			}
		}
		return r
	}
	if s, ok, err := claudecode.FindServer(state); err != nil {
		return nil, err
	} else if ok {
		regs = append(regs, server("user", "claudemesh uninstall", s))
	}
	if p, err := claudecode.FindProject(state, d.dir); err != nil {
		return nil, err
	} else if p.HasServer {
		regs = append(regs, server("local", "claude mcp remove --scope local "+claudecode.ServerName, p.Server))
	}
	if s, ok, err := claudecode.FindServer(filepath.Join(d.dir, ".mcp.json")); err != nil {
		return nil, err
	} else if ok {
		regs = append(regs, server("project", "claudemesh uninstall --project", s))
	}
	return regs, nil
}

func (d *doctor) checkRegistration() {
	const name = "Claude Code registration"
	regs, err := d.registrations()
	if err != nil {
		d.add(name, statusFail, err.Error(), "repair or remove the file it names")
		return
	}
	describe := func(r doctorReg) string { return r.where + " (" + r.detail + ")" }
	switch len(regs) {
	case 0:
		d.add(name, statusFail, "claudemesh is not registered with Claude Code for "+d.dir, fixRegister)
		return
	case 1:
	default:
		var where, removes []string
		for _, r := range regs {
			where = append(where, describe(r))
		}
		for _, r := range regs[1:] { // keep the first: the plugin, else the user's
			removes = append(removes, r.remove)
		}
		d.add(name, statusFail, fmt.Sprintf("registered %d times: %s; Claude Code starts a server for each (the second stays idle, without tools)", len(regs), strings.Join(where, ", ")),
			"keep one; remove the others: "+strings.Join(removes, "; "))
		return
	}
	r := regs[0]
	switch {
	case !r.ours:
		d.add(name, statusFail, describe(r)+" runs "+r.command+", not claudemesh mcp", "claudemesh install --force (or --project --force), or remove that entry")
		return
	case r.bin == "":
		d.add(name, statusFail, describe(r)+" starts claudemesh from PATH, and there is none", fixInstallBinary)
		return
	}
	if err := runs(r.bin); err != nil {
		d.add(name, statusFail, fmt.Sprintf("%s starts %s, which does not run: %v", describe(r), r.bin, err), "claudemesh install (it registers this binary), or reinstall the binary")
		return
	}
	if resolved, _ := filepath.EvalSymlinks(r.bin); d.self != "" && resolved != d.self {
		d.add(name, statusWarn, fmt.Sprintf("%s starts %s, not this binary (%s)", describe(r), r.bin, d.self), "claudemesh install, with the binary you mean, updates it")
		return
	}
	d.add(name, statusOK, describe(r)+" starts "+d.which(r.bin), "")
}

// hookWhy says what goes wrong without each hook.
var hookWhy = map[string]string{
	"session-start": "a --continue'd or /clear'ed session would not get its true identity",
	"prompt":        "prompts would not mention unread DMs",
}

func (d *doctor) checkHooks() {
	config, err := claudecode.ConfigDir(d.getenv)
	if err != nil {
		d.add("hooks", statusFail, err.Error(), "set HOME or CLAUDE_CONFIG_DIR")
		return
	}
	files := append([]string{claudecode.SettingsFile(config)}, claudecode.ProjectSettingsFiles(d.dir)...)
	var found []claudecode.HookAt
	for _, f := range files {
		h, err := claudecode.FindHooks(f)
		if err != nil {
			d.add("hooks", statusFail, err.Error(), "repair or remove the file it names")
			return
		}
		found = append(found, h...)
	}
	plugin, _ := claudecode.EnabledPlugin(d.getenv, d.dir)
	for _, want := range claudecode.Hooks() {
		name := "hook " + want.Event
		type source struct{ where, bin string }
		var got []source
		for _, p := range plugin {
			got = append(got, source{"plugin " + p.ID, d.onPath})
		}
		for _, h := range found {
			if h.Event == want.Event && h.Arg == want.Arg {
				got = append(got, source{h.File, h.Bin})
			}
		}
		why := hookWhy[want.Arg]
		if why == "" {
			why = "claudemesh would miss the " + want.Event + " event"
		}
		if len(got) == 0 {
			d.add(name, statusFail, fmt.Sprintf("no %s hook runs claudemesh hook %s: %s", want.Event, want.Arg, why),
				"claudemesh install adds it (the plugin has it too: claude plugin install claudemesh@claudemesh)")
			continue
		}
		var broken []string
		for _, s := range got {
			bin := s.bin
			if bin != "" && !filepath.IsAbs(bin) {
				bin, _ = exec.LookPath(bin)
			}
			if bin == "" {
				broken = append(broken, s.where+": no claudemesh on PATH")
			} else if err := runs(bin); err != nil {
				broken = append(broken, fmt.Sprintf("%s: %s does not run (%v)", s.where, bin, err))
			}
		}
		var where []string
		for _, s := range got {
			where = append(where, s.where)
		}
		switch {
		case len(broken) > 0:
			d.add(name, statusFail, strings.Join(broken, "; ")+": "+why, "claudemesh install (it points the hooks at this binary), or put claudemesh on PATH")
		case len(got) > 1:
			d.add(name, statusWarn, fmt.Sprintf("registered %d times (%s): it runs once for each", len(got), strings.Join(where, ", ")),
				"keep one registration of claudemesh (see the line above)")
		default:
			d.add(name, statusOK, fmt.Sprintf("%s runs %s hook %s", where[0], d.which(got[0].bin), want.Arg), "")
		}
	}
}

func (d *doctor) checkProject() {
	const name = "project approval"
	state, err := claudecode.StateFile(d.getenv)
	if err != nil {
		d.add(name, statusSkip, err.Error(), "")
		return
	}
	p, err := claudecode.FindProject(state, d.dir)
	if err != nil {
		d.add(name, statusFail, err.Error(), "repair or remove the file it names")
		return
	}
	_, hasProjectServer, _ := claudecode.FindServer(filepath.Join(d.dir, ".mcp.json"))
	if hasProjectServer {
		config, _ := claudecode.ConfigDir(d.getenv)
		all := false
		for _, f := range append([]string{claudecode.SettingsFile(config)}, claudecode.ProjectSettingsFiles(d.dir)...) {
			if ok, _ := claudecode.ApprovesAllProjectServers(f); ok {
				all = true
			}
		}
		switch {
		case slices.Contains(p.Disapproved, claudecode.ServerName):
			d.add(name, statusFail, "the claudemesh server of "+filepath.Join(d.dir, ".mcp.json")+" was refused in this project, so Claude Code does not start it",
				"claude mcp reset-project-choices (here), then approve it when Claude Code asks")
			return
		case !all && !slices.Contains(p.Approved, claudecode.ServerName):
			d.add(name, statusWarn, "the claudemesh server of "+filepath.Join(d.dir, ".mcp.json")+" is not approved yet: Claude Code asks at the first interactive start (claude -p uses it without asking)", "")
			return
		}
	}
	switch {
	case p.Trusted:
		d.add(name, statusOK, d.dir+" is trusted in Claude Code", "")
	default:
		d.add(name, statusWarn, d.dir+" is not trusted yet: Claude Code asks once at the first interactive start here; project hooks run only after that", "")
	}
}

func (d *doctor) checkIdentity() {
	const name = "identity"
	if d.cfgErr != nil {
		d.add(name, statusFail, d.cfgErr.Error(), "fix the variable it names")
		return
	}
	c := d.cfg
	who := c.Name
	if c.TagName {
		who += "#<first 4 digits of the session UUID>"
	}
	admitted := "admitted by the broker's credential"
	if c.Member != nil {
		admitted = "attested by this machine's member key"
	}
	var session string
	switch c.SessionSource {
	case config.EnvSessionID:
		session = "pinned to session " + c.SessionID + " by " + config.EnvSessionID + " (every session started here is that one)"
	case claudecode.EnvSessionID:
		session = "session " + c.SessionID + " (" + claudecode.EnvSessionID + ")"
	default:
		session = "one key per Claude Code session UUID, kept in " + filepath.Join(c.Home, "sessions", c.Mesh)
	}
	d.add(name, statusOK, fmt.Sprintf("%q in mesh %s, %s; %s", who, c.Mesh, admitted, session), "")
}
