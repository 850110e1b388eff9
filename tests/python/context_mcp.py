"""The official MCP Python SDK against `stack serve context`, in both protocol eras.

Env: MCP_URL (http://127.0.0.1:PORT/mcp). With mcp 2.x it runs twice: `mode="auto"`
(server/discover → 2026-07-28, stateless) and `mode="legacy"` (initialize → 2025-11-25,
sessions); with mcp 1.x, the 2025-11-25 `initialize` handshake over Streamable HTTP.
"""
import asyncio
import json
import os
from importlib.metadata import version

URL = os.environ["MCP_URL"]
MAJOR = int(version("mcp").split(".")[0])
print("mcp", version("mcp"))

TOOLS = {"store_context", "retrieve_context", "update_context", "prune_context",
         "list_sessions", "delete_session"}


def structured(result):
    s = getattr(result, "structured_content", None)
    if s is None:
        s = getattr(result, "structuredContent", None)
    return s


def is_error(result):
    v = getattr(result, "is_error", None)
    return v if v is not None else getattr(result, "isError", False)


def error_data(exc):
    err = getattr(exc, "error", None)
    return getattr(err, "data", None) if err is not None else getattr(exc, "data", None)


async def exercise(c, era, session):
    tools = (await c.list_tools()).tools
    names = {t.name for t in tools}
    assert names == TOOLS, names
    for t in tools:
        schema = getattr(t, "input_schema", None) or getattr(t, "inputSchema", None)
        out = getattr(t, "output_schema", None) or getattr(t, "outputSchema", None)
        assert schema and schema.get("type") == "object", (t.name, schema)
        assert out and out.get("type") == "object", (t.name, out)

    await c.call_tool("delete_session", {"session_id": session})  # a clean slate
    ids = []
    for i, (role, text) in enumerate([("user", "Where do we deploy the billing service?"),
                                      ("assistant", "Billing deploys to the eu-west cluster every Tuesday."),
                                      ("user", "And who owns the on-call rotation?")]):
        r = await c.call_tool("store_context", {"session_id": session, "role": role, "content": text,
                                                "metadata": {"turn": i}})
        assert not is_error(r), r
        s = structured(r)
        assert s["session_id"] == session and s["tokens"] > 0, s
        ids.append(s["id"])

    r = await c.call_tool("retrieve_context", {"session_id": session, "query": "billing cluster", "max_tokens": 60})
    ctx = structured(r)
    assert ctx["tokens"] <= 60 and ctx["max_tokens"] == 60, ctx
    assert ctx["entries"][-1]["id"] == ids[-1], "the newest turn is always there"
    assert json.loads(r.content[0].text)["session_id"] == session, "text content mirrors the structure"

    r = await c.call_tool("update_context", {"session_id": session, "entry_id": ids[0], "content": "Where is billing?"})
    assert structured(r)["id"] == ids[0]
    sessions = structured(await c.call_tool("list_sessions", {}))["sessions"]
    assert any(s["id"] == session and s["entries"] == 3 for s in sessions), sessions
    r = await c.call_tool("prune_context", {"session_id": session, "keep_last": 2})
    assert structured(r)["removed"] == 1 and structured(r)["remaining"] == 2

    # Input errors are tool results with isError; unknown tools are protocol errors.
    bad = await c.call_tool("store_context", {"session_id": session, "role": "robot", "content": "x"})
    assert is_error(bad) and "not a role" in bad.content[0].text, bad
    missing = await c.call_tool("store_context", {"session_id": session})
    assert is_error(missing), missing
    # An unknown session has an empty context, not an error.
    unknown_session = await c.call_tool("retrieve_context", {"session_id": "nobody-here"})
    assert not is_error(unknown_session) and structured(unknown_session)["entries"] == [], unknown_session
    try:
        r = await c.call_tool("no_such_tool", {})
        raise AssertionError(f"unknown tool answered: {r}")
    except AssertionError:
        raise
    except Exception as e:
        assert "no_such_tool" in str(e) or "not found" in str(e).lower() or "unknown" in str(e).lower(), e

    # Resources, the template, a missing one with data.uri.
    uris = {str(r.uri) for r in (await c.list_resources()).resources}
    assert "context://sessions" in uris and f"context://sessions/{session}" in uris, uris
    listed = await c.list_resource_templates()
    templates = getattr(listed, "resource_templates", None) or listed.resourceTemplates
    assert any((getattr(t, "uri_template", None) or t.uriTemplate) == "context://sessions/{session_id}" for t in templates)
    listing = json.loads((await c.read_resource("context://sessions")).contents[0].text)
    assert any(s["id"] == session for s in listing["sessions"])
    one = json.loads((await c.read_resource(f"context://sessions/{session}")).contents[0].text)
    assert one["session_id"] == session and len(one["entries"]) == 2
    try:
        await c.read_resource("context://sessions/missing-session")
        raise AssertionError("a missing resource was read")
    except AssertionError:
        raise
    except Exception as e:
        data = error_data(e)
        assert data and data.get("uri") == "context://sessions/missing-session", (e, data)

    # The prompt.
    prompts = (await c.list_prompts()).prompts
    assert [p.name for p in prompts] == ["summarize_session"]
    p = await c.get_prompt("summarize_session", {"session_id": session})
    assert "on-call rotation" in p.messages[0].content.text

    r = await c.call_tool("delete_session", {"session_id": session})
    assert structured(r)["deleted"] is True
    print("ok", era)


async def main():
    if MAJOR >= 2:
        from mcp import Client
        for mode in ("auto", "legacy"):
            async with Client(URL, mode=mode) as c:
                era = str(c.protocol_version)
                expected = "2026-07-28" if mode == "auto" else "2025-11-25"
                assert era == expected, (mode, era)
                await exercise(c, era, f"py2-{mode}")
    else:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamablehttp_client
        async with streamablehttp_client(URL) as (read, write, get_session_id):
            async with ClientSession(read, write) as c:
                init = await c.initialize()
                assert str(init.protocolVersion) == "2025-11-25", init.protocolVersion
                assert get_session_id(), "a 2025-11-25 session has an Mcp-Session-Id"
                await exercise(c, str(init.protocolVersion), "py1")


asyncio.run(main())
