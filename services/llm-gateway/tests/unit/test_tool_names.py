from keel_llm_gateway.adapters.openai_compat import parse_response, request_body
from keel_llm_gateway.adapters.tool_names import ToolNames
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, ToolCall, ToolSpec


def test_unsafe_names_map_to_safe_ones_and_back_without_collisions() -> None:
    names = ToolNames(["mcp.files.read", "mcp_files_read", "calculator"])
    assert names.to_wire("calculator") == "calculator"
    assert names.to_wire("mcp.files.read") == "mcp_files_read"
    assert names.to_wire("mcp_files_read") == "mcp_files_read_2"
    assert names.from_wire("mcp_files_read") == "mcp.files.read"
    assert names.from_wire("mcp_files_read_2") == "mcp_files_read"
    assert len(ToolNames(["x" * 100]).to_wire("x" * 100)) == 64


def test_requests_use_safe_names_and_replies_get_the_real_ones() -> None:
    request = CompletionRequest(
        messages=(
            ChatMessage(role="user", content="read it"),
            ChatMessage(role="assistant", tool_calls=(ToolCall(id="c1", name="mcp.fs.read"),)),
            ChatMessage(role="tool", content="data", tool_call_id="c1", name="mcp.fs.read"),
        ),
        tools=(ToolSpec(name="mcp.fs.read"),),
    )
    names = ToolNames(t.name for t in request.tools)
    body = request_body(request, "m", names)
    assert body["tools"][0]["function"]["name"] == "mcp_fs_read"
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "mcp_fs_read"
    assert body["messages"][2]["name"] == "mcp_fs_read"
    reply = {
        "choices": [
            {
                "message": {
                    "tool_calls": [
                        {"id": "c2", "function": {"name": "mcp_fs_read", "arguments": "{}"}}
                    ]
                }
            }
        ]
    }
    completion = parse_response(reply, "m", "openai", names)
    assert completion.message.tool_calls[0].name == "mcp.fs.read"
