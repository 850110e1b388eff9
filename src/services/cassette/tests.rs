use serde_json::json;

use super::*;

fn chat(prompt: &str, stream: bool) -> Vec<u8> {
    json!({"stream": stream, "user": "u-1", "model": "gpt-4o", "temperature": 0.7,
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]})
    .to_string()
    .into_bytes()
}

#[test]
fn matching_ignores_stream_user_and_key_order() {
    let a = canonical(&chat("Hello there, world!", true)).expect("json");
    let b = canonical(br#"{"messages":[{"content":"be brief","role":"system"},{"role":"user","content":"Hello there, world!"}],"temperature":0.7,"model":"gpt-4o","metadata":{"x":1}}"#).expect("json");
    assert_eq!(a, b);
    assert_eq!(
        fingerprint("/v1/chat/completions", &a),
        fingerprint("/v1/chat/completions", &b)
    );
    assert_ne!(
        fingerprint("/v1/chat/completions", &a),
        fingerprint("/v1/messages", &a)
    );
    let name = file_name("/v1/chat/completions", &a);
    let name = name.to_string_lossy();
    assert!(
        name.starts_with("chat-completions/hello-there-world-"),
        "{name}"
    );
    assert!(name.ends_with(".yaml"));
}

#[test]
fn a_cassette_round_trips_byte_for_byte_with_sorted_keys() {
    let c = Cassette {
        request: canonical(&chat("hi", false)).expect("json"),
        response: Recorded {
            body: None,
            content_type: "text/event-stream".into(),
            frames: vec![
                Frame {
                    at_ms: 12,
                    data: "event: message_start\ndata: {\"a\":\"é\\n\"}".into(),
                },
                Frame {
                    at_ms: 40,
                    data: "data: [DONE]".into(),
                },
            ],
            latency_ms: 0,
            status: 200,
        },
        route: "/v1/chat/completions".into(),
    };
    let text = to_yaml(&c).expect("yaml");
    let back = from_yaml(&text).expect("parse");
    assert_eq!(back, c);
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .collect();
    assert_eq!(
        keys.first().map(|k| k.starts_with("request:")),
        Some(true),
        "{text}"
    );
    assert!(text.find("\nresponse:") < text.find("\nroute:"), "{text}");
    assert!(text.find("model:") < text.find("temperature:"), "{text}");
}

#[test]
fn a_diff_names_the_fields_that_differ() {
    let a = canonical(&chat("hi", false)).expect("json");
    let b = canonical(&chat("hello", false)).expect("json");
    let d = diff(&a, &b, 3);
    assert_eq!(
        d,
        vec![r#"messages[1].content: recorded "hi", asked "hello""#]
    );
    let mut c = b.clone();
    c["tools"] = json!([]);
    let d = diff(&a, &c, 3);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d[1].starts_with("tools: absent from the recording"),
        "{d:?}"
    );
}

#[test]
fn split_and_assemble_agree_for_chat_and_messages() {
    let doc = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
            "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
    let frames: Vec<Frame> = shape::split("/v1/chat/completions", &doc, true)
        .expect("split")
        .into_iter()
        .map(|data| Frame { at_ms: 0, data })
        .collect();
    assert_eq!(frames.last().map(|f| f.data.as_str()), Some("data: [DONE]"));
    assert_eq!(
        shape::assemble("/v1/chat/completions", &frames).expect("assemble"),
        doc
    );

    let msg = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"x": 1}}],
        "stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 4}});
    let frames: Vec<Frame> = shape::split("/v1/messages", &msg, false)
        .expect("split")
        .into_iter()
        .map(|data| Frame { at_ms: 0, data })
        .collect();
    assert!(frames[0].data.starts_with("event: message_start\ndata: "));
    assert_eq!(
        shape::assemble("/v1/messages", &frames).expect("assemble"),
        msg
    );
}
