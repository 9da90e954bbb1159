// Package scripttest runs Lua hook scripts against fixtures: messages, logins and joins,
// each with the decision the scripts must reach. A moderation team changes its rules
// with tests that run in CI without Go; `timgw script-test` is the command.
//
// A fixture file is YAML:
//
//	dir: ..                      # the scripts directory, relative to this file
//	scripts: [moderation.lua]    # loaded in this order, as hooks.scripts
//	vars:                        # hooks.vars
//	  moderation: {words: [badword], rate_limit: 3}
//	cases:                       # run in order on one runtime (counters carry over)
//	  - name: a banned word is masked
//	    message: {from: alice, to: bob, content: "a badword"}
//	    expect: {action: rewrite, content: "a *******"}
//
// Each case has one input (message, login, authenticated, join or event) and an expect. The
// scripts run exactly as in the gateway (same sandbox, limits and deadline), with
// tim.is_online answering false for everyone.
package scripttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/timgw/timgw/core/config"
	"github.com/timgw/timgw/core/hook"
	"github.com/timgw/timgw/core/lua"
	"github.com/timgw/timgw/core/packet"
)

// File is one fixture file.
type File struct {
	// Dir is the scripts directory, relative to the fixture file (default: its own
	// directory).
	Dir string `yaml:"dir"`
	// Scripts are loaded in order (hooks.scripts).
	Scripts []string `yaml:"scripts"`
	// Vars are hooks.vars.
	Vars map[string]any `yaml:"vars"`
	// Timeout is hooks.timeout (default: the gateway's default).
	Timeout time.Duration `yaml:"timeout"`
	// Cases run in order, on one runtime.
	Cases []Case `yaml:"cases"`
}

// Case is one input and the decision expected for it.
type Case struct {
	// Name says what the case checks.
	Name string `yaml:"name"`
	// One input: a chat message, a login attempt (auth hook), a verified login
	// (authenticated hook), or a join.
	Message       *Message       `yaml:"message"`
	Login         *Login         `yaml:"login"`
	Authenticated *Authenticated `yaml:"authenticated"`
	Join          *Join          `yaml:"join"`
	Event         *Event         `yaml:"event"`
	// Repeat sends the input this many times (default 1); Expect applies to the last.
	Repeat int `yaml:"repeat"`
	// Expect is the decision.
	Expect Expect `yaml:"expect"`
}

// Message is a chat as the message hook gets it: from is the logged-in sender.
type Message struct {
	From     string         `yaml:"from"`
	To       string         `yaml:"to"`
	GroupID  string         `yaml:"group"`
	Content  string         `yaml:"content"`
	MsgType  int            `yaml:"msg_type"`
	Extras   map[string]any `yaml:"extras"`
	Protocol string         `yaml:"protocol"` // tcp (default), ws or http
}

// Login is an authentication attempt as the auth hook gets it.
type Login struct {
	UserID   string `yaml:"user"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	Source   string `yaml:"source"` // login (default, cmd 5) or auth (cmd 3)
}

// Authenticated is a verified identity as the authenticated hook gets it.
type Authenticated struct {
	UserID string         `yaml:"user"`
	Claims map[string]any `yaml:"claims"`
	Groups []string       `yaml:"groups"`
}

// Join is a join request.
type Join struct {
	UserID  string `yaml:"user"`
	GroupID string `yaml:"group"`
}

// Event is a webhook event as the event hook gets it (docs/webhooks.md).
type Event struct {
	Type         string   `yaml:"type"` // message.offline, message.refused, user.online, user.offline
	User         string   `yaml:"user"`
	Message      *Message `yaml:"message"`
	OfflineUsers []string `yaml:"offline_users"`
	Members      int      `yaml:"members"`
	Code         int      `yaml:"code"`
	Reason       string   `yaml:"reason"`
}

// Expect is a decision. Action is, for a message: pass, rewrite, reroute, reject or
// drop; for a login or authenticated: pass, accept or reject; for a join: allow or deny;
// for an event: pass or drop.
// The other fields are checked when set.
type Expect struct {
	Action string `yaml:"action"`
	// Code is the status of a rejected message or login.
	Code int `yaml:"code"`
	// Reason must be contained in the reason (message, join) or message (login).
	Reason string `yaml:"reason"`
	// Content is the message content after the scripts (rewrite).
	Content *string `yaml:"content"`
	// To and Group are the receivers after a reroute.
	To    []string `yaml:"to"`
	Group string   `yaml:"group"`
	// User is the user id of an accepted login.
	User string `yaml:"user"`
	// Extra are fields an event script must have added to ev.extra (compared as
	// YAML/JSON values).
	Extra map[string]any `yaml:"extra"`
}

// Result is the outcome of one case.
type Result struct {
	File, Case string
	// Err is nil when the case passed.
	Err error
}

// RunDir runs every *.yaml fixture of dir (or the one file dir names), in name order.
func RunDir(ctx context.Context, path string) ([]Result, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml fixture files", path)
		}
	}
	var out []Result
	for _, f := range files {
		res, err := RunFile(ctx, f)
		if err != nil {
			out = append(out, Result{File: f, Case: "(load)", Err: err})
			continue
		}
		out = append(out, res...)
	}
	return out, nil
}

// RunFile runs the cases of one fixture file. The error reports a file that cannot be
// read or scripts that cannot be loaded.
func RunFile(ctx context.Context, path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(f.Scripts) == 0 {
		return nil, fmt.Errorf("%s: no scripts listed", path)
	}
	cfg := config.DefaultHooks()
	cfg.Enabled, cfg.Watch = true, false
	cfg.Dir = filepath.Join(filepath.Dir(path), f.Dir)
	if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s: scripts directory %s not found", path, cfg.Dir)
	}
	cfg.Scripts, cfg.Vars = f.Scripts, f.Vars
	if f.Timeout > 0 {
		cfg.Timeout = f.Timeout
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := lua.New(cfg, lua.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s: load scripts: %w", path, err)
	}
	defer rt.Close()
	if msg := strings.TrimSpace(logs.String()); msg != "" {
		return nil, fmt.Errorf("%s: load scripts: %s", path, msg)
	}
	out := make([]Result, 0, len(f.Cases))
	for i, c := range f.Cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i+1)
		}
		logs.Reset()
		err := c.run(ctx, rt)
		if err != nil && logs.Len() > 0 {
			err = fmt.Errorf("%w\n  log: %s", err, strings.TrimSpace(logs.String()))
		}
		out = append(out, Result{File: path, Case: name, Err: err})
	}
	return out, nil
}

func (c Case) run(ctx context.Context, rt *lua.Runtime) error {
	n := max(c.Repeat, 1)
	var err error
	for range n {
		switch {
		case c.Message != nil:
			err = c.message(ctx, rt)
		case c.Login != nil:
			err = c.login(ctx, rt)
		case c.Authenticated != nil:
			err = c.authenticated(ctx, rt)
		case c.Join != nil:
			err = c.join(ctx, rt)
		case c.Event != nil:
			err = c.event(ctx, rt)
		default:
			return errors.New("no input: give message, login, authenticated, join or event")
		}
	}
	return err
}

func (c Case) message(ctx context.Context, rt *lua.Runtime) error {
	m := c.Message
	chat := &packet.Chat{Cmd: packet.Int(packet.CmdChatReq), From: packet.Str(m.From), To: packet.Str(m.To),
		GroupID: packet.Str(m.GroupID), Content: m.Content, MsgType: packet.Int(m.MsgType), ChatType: packet.ChatTypePrivate}
	if m.GroupID != "" {
		chat.ChatType = packet.ChatTypeGroup
	}
	if m.Extras != nil {
		b, err := packet.Marshal(m.Extras)
		if err != nil {
			return fmt.Errorf("extras: %w", err)
		}
		chat.Extras = b
	}
	proto := m.Protocol
	if proto == "" {
		proto = hook.ProtocolTCP
	}
	rep := rt.Message(ctx, &hook.MessageRequest{Sender: m.From, Protocol: proto, Addr: "127.0.0.1:1", Chat: chat})
	var errs []error
	want := c.Expect
	if want.Action == "" {
		want.Action = "pass"
	}
	if got := rep.Action.String(); got != want.Action {
		errs = append(errs, fmt.Errorf("action %s, want %s%s", got, want.Action, because(rep.Reason)))
	}
	if want.Code != 0 && int(rep.Code) != want.Code {
		errs = append(errs, fmt.Errorf("code %d, want %d", rep.Code, want.Code))
	}
	if want.Reason != "" && !strings.Contains(rep.Reason, want.Reason) {
		errs = append(errs, fmt.Errorf("reason %q does not contain %q", rep.Reason, want.Reason))
	}
	if want.Content != nil && chat.Content != *want.Content {
		errs = append(errs, fmt.Errorf("content %q, want %q", chat.Content, *want.Content))
	}
	if want.To != nil && strings.Join(rep.To, ",") != strings.Join(want.To, ",") {
		errs = append(errs, fmt.Errorf("rerouted to %q, want %q", rep.To, want.To))
	}
	if want.Group != "" && rep.GroupID != want.Group {
		errs = append(errs, fmt.Errorf("rerouted to group %q, want %q", rep.GroupID, want.Group))
	}
	return errors.Join(errs...)
}

var authDecisions = map[hook.AuthDecision]string{hook.AuthPass: "pass", hook.AuthAccept: "accept", hook.AuthReject: "reject"}

func (c Case) login(ctx context.Context, rt *lua.Runtime) error {
	l := c.Login
	src := l.Source
	if src == "" {
		src = hook.SourceLogin
	}
	rep := rt.Auth(ctx, &hook.AuthRequest{Source: src, UserID: l.UserID, Password: l.Password, Token: l.Token,
		Protocol: hook.ProtocolTCP, Addr: "127.0.0.1:1"})
	return c.checkAuth(rep)
}

func (c Case) authenticated(ctx context.Context, rt *lua.Runtime) error {
	a := c.Authenticated
	rep := rt.Authenticated(ctx, &hook.AuthenticatedRequest{Source: hook.SourceLogin, UserID: a.UserID,
		Groups: a.Groups, Claims: a.Claims, By: hook.ByAuthenticator, Protocol: hook.ProtocolTCP, Addr: "127.0.0.1:1"})
	return c.checkAuth(rep)
}

func (c Case) checkAuth(rep hook.AuthReply) error {
	want := c.Expect
	if want.Action == "" {
		want.Action = "pass"
	}
	var errs []error
	if got := authDecisions[rep.Decision]; got != want.Action {
		errs = append(errs, fmt.Errorf("decision %s, want %s%s", got, want.Action, because(rep.Message)))
	}
	if want.Code != 0 && int(rep.Code) != want.Code {
		errs = append(errs, fmt.Errorf("code %d, want %d", rep.Code, want.Code))
	}
	if want.Reason != "" && !strings.Contains(rep.Message, want.Reason) {
		errs = append(errs, fmt.Errorf("message %q does not contain %q", rep.Message, want.Reason))
	}
	if want.User != "" && rep.UserID != want.User {
		errs = append(errs, fmt.Errorf("user %q, want %q", rep.UserID, want.User))
	}
	return errors.Join(errs...)
}

func (c Case) join(ctx context.Context, rt *lua.Runtime) error {
	rep := rt.Join(ctx, &hook.JoinRequest{User: c.Join.UserID, Group: c.Join.GroupID, Protocol: hook.ProtocolTCP, Addr: "127.0.0.1:1"})
	want := c.Expect
	if want.Action == "" {
		want.Action = "allow"
	}
	got := "allow"
	if rep.Deny {
		got = "deny"
	}
	var errs []error
	if got != want.Action {
		errs = append(errs, fmt.Errorf("join %s, want %s%s", got, want.Action, because(rep.Reason)))
	}
	if want.Reason != "" && !strings.Contains(rep.Reason, want.Reason) {
		errs = append(errs, fmt.Errorf("reason %q does not contain %q", rep.Reason, want.Reason))
	}
	return errors.Join(errs...)
}

func (c Case) event(ctx context.Context, rt *lua.Runtime) error {
	e := c.Event
	req := &hook.EventRequest{Type: e.Type, ID: "fixture-1", Time: time.Now().UnixMilli(), User: e.User,
		OfflineUsers: e.OfflineUsers, Members: e.Members, Code: e.Code, Reason: e.Reason}
	if m := e.Message; m != nil {
		ct := int64(packet.ChatTypePrivate)
		if m.GroupID != "" {
			ct = int64(packet.ChatTypeGroup)
		}
		req.Message = &hook.EventMessage{ID: "m1", From: m.From, To: m.To, GroupID: m.GroupID, ChatType: ct,
			MsgType: int64(m.MsgType), Content: m.Content}
	}
	rep := rt.Event(ctx, req)
	want := c.Expect
	if want.Action == "" {
		want.Action = "pass"
	}
	got := "pass"
	if rep.Drop {
		got = "drop"
	}
	var errs []error
	if got != want.Action {
		errs = append(errs, fmt.Errorf("event %s, want %s", got, want.Action))
	}
	for k, v := range want.Extra {
		gv, ok := rep.Extra[k]
		if !ok || !sameJSON(gv, v) {
			errs = append(errs, fmt.Errorf("extra.%s = %v, want %v", k, gv, v))
		}
	}
	return errors.Join(errs...)
}

// sameJSON compares two values as their JSON texts (YAML ints and Lua numbers alike).
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}
