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
	tests := []struct {
		name      string
		sdk, core int
	}{
		{"CmdError", int(sdk.CmdError), int(packet.CmdError)},
		{"CmdLoginReq", int(sdk.CmdLoginReq), int(packet.CmdLoginReq)},
		{"CmdLoginResp", int(sdk.CmdLoginResp), int(packet.CmdLoginResp)},
		{"CmdJoinGroupReq", int(sdk.CmdJoinGroupReq), int(packet.CmdJoinGroupReq)},
		{"CmdJoinGroupResp", int(sdk.CmdJoinGroupResp), int(packet.CmdJoinGroupResp)},
		{"CmdJoinGroupNotify", int(sdk.CmdJoinGroupNotify), int(packet.CmdJoinGroupNotify)},
		{"CmdExitGroupNotify", int(sdk.CmdExitGroupNotify), int(packet.CmdExitGroupNotify)},
		{"CmdChatReq", int(sdk.CmdChatReq), int(packet.CmdChatReq)},
		{"CmdChatResp", int(sdk.CmdChatResp), int(packet.CmdChatResp)},
		{"CmdHeartbeatReq", int(sdk.CmdHeartbeatReq), int(packet.CmdHeartbeatReq)},
		{"CmdCloseReq", int(sdk.CmdCloseReq), int(packet.CmdCloseReq)},
		{"CmdLeaveGroupReq", int(sdk.CmdLeaveGroupReq), int(packet.CmdLeaveGroupReq)},
		{"CmdLeaveGroupResp", int(sdk.CmdLeaveGroupResp), int(packet.CmdLeaveGroupResp)},
		{"StatusOK", int(sdk.StatusOK), int(packet.StatusOK)},
		{"StatusOffline", int(sdk.StatusOffline), int(packet.StatusOffline)},
		{"StatusLoginOK", int(sdk.StatusLoginOK), int(packet.StatusLoginOK)},
		{"StatusLoginFailed", int(sdk.StatusLoginFailed), int(packet.StatusLoginFailed)},
		{"StatusAuthFailed", int(sdk.StatusAuthFailed), int(packet.StatusAuthFailed)},
		{"StatusJoinGroupOK", int(sdk.StatusJoinGroupOK), int(packet.StatusJoinGroupOK)},
		{"StatusJoinGroupFailed", int(sdk.StatusJoinGroupFailed), int(packet.StatusJoinGroupFailed)},
		{"StatusInvalidBody", int(sdk.StatusInvalidBody), int(packet.StatusInvalidBody)},
		{"StatusNotLoggedIn", int(sdk.StatusNotLoggedIn), int(packet.StatusNotLoggedIn)},
		{"StatusNotGroupMember", int(sdk.StatusNotGroupMember), int(packet.StatusNotGroupMember)},
		{"StatusTooLarge", int(sdk.StatusTooLarge), int(packet.StatusTooLarge)},
		{"StatusRejected", int(sdk.StatusRejected), int(packet.StatusRejected)},
		{"StatusRateLimited", int(sdk.StatusRateLimited), int(packet.StatusRateLimited)},
		{"StatusForbidden", int(sdk.StatusForbidden), int(packet.StatusForbidden)},
		{"StatusStorageDown", int(sdk.StatusStorageDown), int(packet.StatusStorageUnavailable)},
		{"StatusServerBusy", int(sdk.StatusServerBusy), int(packet.StatusServerBusy)},
		{"ChatGroup", sdk.ChatGroup, packet.ChatTypeGroup},
		{"ChatPrivate", sdk.ChatPrivate, packet.ChatTypePrivate},
		{"NoMatch", int(match(sdk.NoMatch)), int(codec.NoMatch)},
		{"NeedMore", int(match(sdk.NeedMore)), int(codec.NeedMore)},
		{"Matched", int(match(sdk.Matched)), int(codec.Matched)},
		{"unknown verdict", int(match(sdk.Match(7))), int(codec.NoMatch)},
	}
	for _, tt := range tests {
		if tt.sdk != tt.core {
			t.Errorf("%s: SDK %d, core %d", tt.name, tt.sdk, tt.core)
		}
	}
}
