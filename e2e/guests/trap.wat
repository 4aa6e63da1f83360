;; The smallest proxy-wasm guest that traps on demand, to show what Envoy
;; does with a VM that traps under the failure policy the template ships.
;; A request with an `x-trap` header hits `unreachable` in the request
;; headers callback (as a Rust panic would); any other request continues.
(module
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "x-trap")
  ;; Bump allocator for the host's copies of header values, restarting
  ;; well inside the two pages: nothing is kept between calls.
  (global $next (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (if (i32.gt_u (i32.add (global.get $next) (local.get $size)) (i32.const 131072))
      (then (global.set $next (i32.const 4096))))
    (local.set $at (global.get $next))
    (global.set $next
      (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (local.get $at))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; Map 0 = request headers; status 0 = found.
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 16) (i32.const 20)))
      (then unreachable))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
