#!/usr/bin/env python3
"""A small client of the stack: two chat turns through the gateway, remembered by the
context server, then the context it kept. Standard library only.

Run it with the stack around it:   stack run -- python3 client.py
or against a running stack:        eval "$(stack env --format shell)" && python3 client.py
"""
import json
import os
import sys
import urllib.request

GATEWAY = os.environ.get("STACK_GATEWAY_URL")
KEY = os.environ.get("GATEWAY_KEY", "dev-key")
SESSION = os.environ.get("SESSION", "demo")


def call(method, path, body=None):
    req = urllib.request.Request(
        GATEWAY + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
                 "X-Session-Id": SESSION},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp), resp.headers


def main():
    if not GATEWAY:
        sys.exit("STACK_GATEWAY_URL is not set: run me with `stack run -- python3 client.py`")
    for question in ["What is a context window?", "And why does it matter?"]:
        reply, headers = call("POST", "/v1/chat/completions", {
            "model": "mock-gpt",
            "messages": [{"role": "user", "content": question}],
        })
        print(f"> {question}")
        print(f"< {reply['choices'][0]['message']['content']}")
        print(f"  (context prepended: {headers.get('x-stack-context-entries', '0')} entries)")
    context, _ = call("GET", f"/v1/sessions/{SESSION}/context?max_tokens=512")
    print(f"the context server keeps {len(context['entries'])} entries "
          f"({context['tokens']} tokens) for session {SESSION!r}")


if __name__ == "__main__":
    main()
