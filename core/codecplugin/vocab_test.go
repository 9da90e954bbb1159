package codecplugin

import (
	"testing"

	"github.com/timgw/timgw/core/codec"
	"github.com/timgw/timgw/core/packet"
	sdk "github.com/timgw/timgw/plugins/codec"
)

// TestSDKVocabularyMatchesCore: the plugin SDK keeps its own copy of the t-im codes
// (it must not import the gateway); the host converts by value, so they must agree.
func TestSDKVocabularyMatchesCore(t *testing.T) {
	cmds := []struct {
		sdk  sdk.Cmd
		core packet.Cmd
	}{
		{sdk.CmdError, packet.CmdError}, {sdk.CmdLoginReq, packet.CmdLoginReq}, {sdk.CmdLoginResp, packet.CmdLoginResp},
		{sdk.CmdJoinGroupReq, packet.CmdJoinGroupReq}, {sdk.CmdJoinGroupResp, packet.CmdJoinGroupResp},
		{sdk.CmdJoinGroupNotify, packet.CmdJoinGroupNotify}, {sdk.CmdExitGroupNotify, packet.CmdExitGroupNotify},
		{sdk.CmdChatReq, packet.CmdChatReq}, {sdk.CmdChatResp, packet.CmdChatResp},
		{sdk.CmdHeartbeatReq, packet.CmdHeartbeatReq}, {sdk.CmdCloseReq, packet.CmdCloseReq},
		{sdk.CmdLeaveGroupReq, packet.CmdLeaveGroupReq}, {sdk.CmdLeaveGroupResp, packet.CmdLeaveGroupResp},
	}
	for _, c := range cmds {
		if uint8(c.sdk) != uint8(c.core) {
			t.Errorf("SDK cmd %d, core %s = %d", c.sdk, c.core, c.core)
		}
	}
	statuses := []struct {
		sdk  sdk.Status
		core packet.Status
	}{
		{sdk.StatusOK, packet.StatusOK}, {sdk.StatusOffline, packet.StatusOffline},
		{sdk.StatusLoginOK, packet.StatusLoginOK}, {sdk.StatusLoginFailed, packet.StatusLoginFailed},
		{sdk.StatusAuthFailed, packet.StatusAuthFailed}, {sdk.StatusJoinGroupOK, packet.StatusJoinGroupOK},
		{sdk.StatusJoinGroupFailed, packet.StatusJoinGroupFailed}, {sdk.StatusInvalidBody, packet.StatusInvalidBody},
		{sdk.StatusNotLoggedIn, packet.StatusNotLoggedIn}, {sdk.StatusNotGroupMember, packet.StatusNotGroupMember},
		{sdk.StatusTooLarge, packet.StatusTooLarge}, {sdk.StatusRejected, packet.StatusRejected},
		{sdk.StatusRateLimited, packet.StatusRateLimited}, {sdk.StatusForbidden, packet.StatusForbidden},
		{sdk.StatusStorageDown, packet.StatusStorageUnavailable}, {sdk.StatusServerBusy, packet.StatusServerBusy},
	}
	for _, s := range statuses {
		if int(s.sdk) != int(s.core) {
			t.Errorf("SDK status %d, core %s = %d", s.sdk, s.core.Text(), s.core)
		}
	}
	if sdk.ChatGroup != packet.ChatTypeGroup || sdk.ChatPrivate != packet.ChatTypePrivate {
		t.Errorf("chat types: SDK %d/%d, core %d/%d", sdk.ChatGroup, sdk.ChatPrivate, packet.ChatTypeGroup, packet.ChatTypePrivate)
	}
	for _, m := range []struct {
		sdk  sdk.Match
		want codec.Match
	}{{sdk.NoMatch, codec.NoMatch}, {sdk.NeedMore, codec.NeedMore}, {sdk.Matched, codec.Matched}} {
		if got := match(m.sdk); got != m.want {
			t.Errorf("match(%d) = %d, want %d", m.sdk, got, m.want)
		}
	}
}
