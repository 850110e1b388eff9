"""The official MCP Python SDK drives `stack mcp` over stdio against a running stack
(`web`, `worker`, and `memory`: a context server with a token), every tool; then the OpenAI Agents SDK's strict-schema
conversion must accept every tool of `stack mcp` and of the context server.

Env: STACK (the binary), STACK_FILE (the stack file), CONTEXT_URL (a context server's
/mcp), MODE (`all`, or `strict` for only the conversion).
"""
import asyncio
import copy
import json
import os
import time

from mcp import Client, StdioServerParameters

STACK = os.environ["STACK"]
STACK_FILE = os.environ["STACK_FILE"]
CONTEXT_URL = os.environ.get("CONTEXT_URL")
MODE = os.environ.get("MODE", "all")

TOOLS = {"list_services", "service_logs", "restart_service", "stop_service", "start_service",
         "stack_env", "doctor", "up", "down", "context_sessions"}
READ_ONLY = {"list_services", "service_logs", "stack_env", "doctor", "context_sessions"}
SERVICES = {"web", "worker", "memory"}
DESTRUCTIVE = {"restart_service", "stop_service", "down"}


def server():
    return StdioServerParameters(command=STACK, args=["-f", STACK_FILE, "mcp"])


def structured(r):
    assert not r.is_error, r
    return r.structured_content


def service(doc, name):
    return next(s for s in doc["services"] if s["name"] == name)


def strict_ok(tools, who):
    """Every input schema converts to OpenAI's strict mode, as the Agents SDK does for MCP
    tools with `convert_schemas_to_strict=True` (open objects rejected)."""
    from agents.strict_schema import ensure_strict_json_schema
    for t in tools:
        schema = copy.deepcopy(t.input_schema)
        schema.setdefault("properties", {})
        try:
            ensure_strict_json_schema(schema, _reject_open_objects=True)
        except Exception as e:  # noqa: BLE001 - the message is the finding
            raise AssertionError(f"{who}: {t.name} is not strict-convertible: {e}\n{json.dumps(t.input_schema)}")
        text = json.dumps(t.input_schema) + json.dumps(t.output_schema or {})
        assert '"null"' not in text, (who, t.name, "a null union")
        assert '"format": "uint' not in text and '"format": "int' not in text, (who, t.name, "a non-standard format")
    print(f"strict ok: {who}, {len(tools)} tools")


async def exercise():
    async with Client(server(), mode="auto") as c:
        tools = (await c.list_tools()).tools
        assert {t.name for t in tools} == TOOLS, {t.name for t in tools}
        for t in tools:
            ann = t.annotations
            assert ann is not None, t.name
            assert bool(ann.read_only_hint) == (t.name in READ_ONLY), (t.name, ann)
            if t.name in DESTRUCTIVE:
                assert ann.destructive_hint is True, (t.name, ann)
            assert t.output_schema and t.output_schema.get("type") == "object", t.name
            assert t.description and len(t.description) > 40, t.name
        strict_ok(tools, "stack mcp")

        doc = structured(await c.call_tool("list_services", {}))
        assert doc["running"] is True, doc
        assert {s["name"] for s in doc["services"]} == SERVICES, doc
        web = service(doc, "web")
        assert web["state"] == "running" and web["health"] == "healthy", web
        assert web["urls"]["main"].startswith("http://127.0.0.1:"), web

        # Logs: filtered to one service and a pattern, bounded with a note.
        logs = structured(await c.call_tool("service_logs", {"service": "worker", "grep": "tick 1[0-9]*$"}))
        assert logs["lines"], logs
        assert all(l["service"] == "worker" and "tick 1" in l["text"] for l in logs["lines"]), logs
        cut = structured(await c.call_tool("service_logs", {"lines": 2}))
        assert len(cut["lines"]) == 2 and cut["truncated"] and "note" in cut, cut
        bad = await c.call_tool("service_logs", {"grep": "("})
        assert bad.is_error and "regular expression" in bad.content[0].text, bad
        nobody = await c.call_tool("service_logs", {"service": "nobody"})
        assert nobody.is_error and "web" in nobody.content[0].text, nobody

        # A restart changes the pid; stop and start.
        r = structured(await c.call_tool("restart_service", {"service": "web"}))
        assert r["action"] == "restarted" and r["service"]["pid"] != web["pid"], (web, r)
        assert r["service"]["restarts"] == web["restarts"] + 1, r
        assert r["service"]["start_reason"] == "restart requested", r
        r = structured(await c.call_tool("stop_service", {"service": "worker"}))
        assert r["action"] == "stopped" and r["service"]["state"] == "stopped", r

        # Doctor finds the stopped service.
        d = structured(await c.call_tool("doctor", {}))
        assert any(f.get("service") == "worker" and f["level"] in ("warning", "error")
                   and "stopped" in f["message"] for f in d["findings"]), d
        r = structured(await c.call_tool("start_service", {"service": "worker"}))
        assert r["action"] == "started" and r["service"]["state"] == "running", r

        env = structured(await c.call_tool("stack_env", {}))["variables"]
        assert env["STACK_WEB_URL"] == web["urls"]["main"], env

        # What the context server remembers (it wants a token: stack mcp has it).
        import httpx
        memory = service(doc, "memory")["urls"]["main"]
        auth = {"authorization": "Bearer mcp-test-token"}
        for i in range(3):
            httpx.post(f"{memory}/v1/sessions/agent-1/entries", headers=auth,
                       json={"role": "user", "content": f"turn {i}"}).raise_for_status()
        listed = structured(await c.call_tool("context_sessions", {}))
        assert listed["service"] == "memory" and any(
            s["id"] == "agent-1" and s["entries"] == 3 for s in listed["sessions"]), listed
        one = structured(await c.call_tool("context_sessions", {"session_id": "agent-1", "limit": 2}))
        assert [e["content"] for e in one["session"]["entries"]] == ["turn 1", "turn 2"], one
        assert "note" in one, one
        missing = await c.call_tool("context_sessions", {"session_id": "nobody"})
        assert missing.is_error and "no conversation" in missing.content[0].text, missing

        # `up` on the running stack keeps it; `down` ends it, and then the tools say so.
        up = structured(await c.call_tool("up", {}))
        assert up["running"] and {s["name"] for s in up["services"]} == SERVICES, up
        down = structured(await c.call_tool("down", {}))
        assert down["project"] == doc["project"], down
        gone = structured(await c.call_tool("list_services", {}))
        assert gone["running"] is False and "up" in gone["hint"], gone
        r = await c.call_tool("restart_service", {"service": "web"})
        assert r.is_error and "not running" in r.content[0].text and "up" in r.content[0].text, r
        # And `up` brings it back.
        up = structured(await c.call_tool("up", {"services": ["web"]}))
        assert [s["name"] for s in up["services"] if s["state"] == "running"] == ["web"], up
        structured(await c.call_tool("down", {}))
    print("ok stack mcp")


async def context_strict():
    async with Client(CONTEXT_URL, mode="auto") as c:
        tools = (await c.list_tools()).tools
        strict_ok(tools, "context")
        by = {t.name: t for t in tools}
        role = by["store_context"].input_schema["properties"]["role"]
        assert role.get("enum") == ["user", "assistant", "system", "tool"], role
        meta = by["store_context"].input_schema["properties"]["metadata"]
        assert meta["type"] == "object" and meta["properties"] and meta["additionalProperties"] is False, meta
        for name in ("retrieve_context", "list_sessions"):
            assert by[name].annotations.read_only_hint is True, name
        for name in ("prune_context", "delete_session"):
            assert by[name].annotations.destructive_hint is True, name
        empty = structured(await c.call_tool("retrieve_context", {"session_id": "never-seen"}))
        assert empty["entries"] == [] and empty["tokens"] == 0, empty


async def main():
    if MODE == "all":
        await exercise()
    if CONTEXT_URL:
        await context_strict()


asyncio.run(main())
