;; The bench's floor: the least a proxy-wasm filter that inspects LLM
;; traffic does. It has Envoy copy the request headers (which API, which
;; request) and the response headers (JSON or a stream, compressed or not)
;; into the VM, holds each request and response body until its end (as
;; meshward does), has Envoy copy the whole body in, and lets it pass
;; unchanged. What Envoy spends on this guest is the cost of being such a
;; filter at all; meshward's figures are read against it.
(module
  (import "env" "proxy_get_buffer_bytes"
    (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs"
    (func $get_headers (param i32 i32 i32) (result i32)))
  ;; 1 MiB: the bench's largest body (256 KiB) and its copy fit.
  (memory (export "memory") 16)
  ;; Bump allocator for the host's copies, restarting when full: nothing
  ;; is kept between calls.
  (global $next (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (if (i32.gt_u (i32.add (global.get $next) (local.get $size)) (i32.const 1048576))
      (then (global.set $next (i32.const 4096))))
    (local.set $at (global.get $next))
    (global.set $next
      (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (local.get $at))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; Map type 0: the request headers; 2: the response headers. Read whole,
  ;; then continue.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get_headers (i32.const 0) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $get_headers (i32.const 2) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  ;; Buffer type 0: the request body; 1: the response body. Until the end
  ;; of the stream: 1 (stop and buffer); at the end: copy it in, 0 (continue).
  (func $read_at_end (param $buffer i32) (param $size i32) (param $end i32) (result i32)
    (if (i32.eqz (local.get $end)) (then (return (i32.const 1))))
    (drop (call $get_buffer (local.get $buffer) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
    (call $read_at_end (i32.const 0) (local.get $size) (local.get $end)))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
    (call $read_at_end (i32.const 1) (local.get $size) (local.get $end)))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
