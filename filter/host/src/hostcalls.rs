//! The functions the host exposes to the guest: proxy-wasm ABI 0.2.1
//! (`env` module) and the WASI preview1 subset Rust's std needs on
//! `wasm32-wasip1`.
//!
//! Every guest pointer is bounds-checked; a bad one is the status
//! `INVALID_MEMORY_ACCESS` (WASI: `FAULT`), never a host panic. The only
//! errors returned to wasmtime (which become traps) are `proc_exit` and a
//! trap inside the guest allocator the host calls to return data.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use wasmtime::{Caller, IntoFunc, Linker};

use crate::abi::{
    self, apply_set_buffer, deserialize_pairs, errno, BufferType, HeaderMap, LogLevel, MapType, MetricType, Status,
    StreamType,
};
use crate::state::{HostState, HttpCall, HttpCallState, LocalResponse, LogEntry, MetricValue, SharedQueue};

type C<'a> = Caller<'a, HostState>;
type R = wasmtime::Result<i32>;

const OK: i32 = Status::Ok as i32;
const IMA: i32 = Status::InvalidMemoryAccess as i32;

/// The error `proc_exit` raises to unwind the guest.
#[derive(Debug)]
pub(crate) struct ProcExit(pub i32);

impl fmt::Display for ProcExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proc_exit({})", self.0)
    }
}

impl std::error::Error for ProcExit {}

// ---------------------------------------------------------------- memory --

fn range(mem_len: usize, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize)?;
    (end <= mem_len).then_some(start..end)
}

/// Runs `f` over the guest bytes `[ptr, ptr+len)` and the host state.
fn with_guest<T>(c: &mut C<'_>, ptr: i32, len: i32, f: impl FnOnce(&[u8], &mut HostState) -> T) -> Result<T, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (data, state) = mem.data_and_store_mut(&mut *c);
    let r = range(data.len(), ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    Ok(f(&data[r], state))
}

/// Like [`with_guest`] over two guest ranges.
fn with_guest2<T>(
    c: &mut C<'_>,
    (p1, l1): (i32, i32),
    (p2, l2): (i32, i32),
    f: impl FnOnce(&[u8], &[u8], &mut HostState) -> T,
) -> Result<T, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (data, state) = mem.data_and_store_mut(&mut *c);
    let r1 = range(data.len(), p1, l1).ok_or(Status::InvalidMemoryAccess)?;
    let r2 = range(data.len(), p2, l2).ok_or(Status::InvalidMemoryAccess)?;
    Ok(f(&data[r1], &data[r2], state))
}

fn read(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    with_guest(c, ptr, len, |b, _| b.to_vec())
}

fn write_bytes(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let data = mem.data_mut(&mut *c);
    let len = i32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let r = range(data.len(), ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write_bytes(c, ptr, &v.to_le_bytes())
}

fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write_bytes(c, ptr, &v.to_le_bytes())
}

fn code(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => OK,
        Err(s) => s.code(),
    }
}

/// Copies `data` into memory the guest allocates, and writes its address
/// and size to `ptr_ptr` / `size_ptr`. Empty data writes a null pointer
/// and size 0 without allocating (as Envoy does).
fn copy_out(c: &mut C<'_>, data: &[u8], ptr_ptr: i32, size_ptr: i32) -> R {
    let Ok(size) = u32::try_from(data.len()) else {
        return Ok(IMA);
    };
    let mut addr = 0u32;
    if size > 0 {
        let Some(alloc) = c.data().alloc.clone() else {
            return Ok(IMA);
        };
        // A trap in the guest allocator propagates as a trap.
        addr = alloc.call(&mut *c, size)?;
        if addr == 0 || write_bytes(c, addr as i32, data).is_err() {
            return Ok(IMA);
        }
    }
    if write_u32(c, ptr_ptr, addr).is_err() || write_u32(c, size_ptr, size).is_err() {
        return Ok(IMA);
    }
    Ok(OK)
}

/// Like [`return_bytes`], with the guest bytes `[kptr, kptr+klen)` (a key
/// or path) passed to `fill` without copying them.
fn return_bytes_for_key(
    c: &mut C<'_>,
    (kptr, klen): (i32, i32),
    ptr_ptr: i32,
    size_ptr: i32,
    fill: impl FnOnce(&[u8], &mut HostState, &mut Vec<u8>) -> Result<(), Status>,
) -> R {
    let mut buf = std::mem::take(&mut c.data_mut().scratch);
    buf.clear();
    let filled = with_guest(c, kptr, klen, |key, state| fill(key, state, &mut buf));
    let result = match filled {
        Ok(Ok(())) => copy_out(c, &buf, ptr_ptr, size_ptr),
        Ok(Err(s)) | Err(s) => Ok(s.code()),
    };
    c.data_mut().scratch = buf;
    result
}

/// Fills the reusable scratch buffer from the state with `fill`, then
/// returns it to the guest with [`copy_out`].
fn return_bytes(
    c: &mut C<'_>,
    ptr_ptr: i32,
    size_ptr: i32,
    fill: impl FnOnce(&mut HostState, &mut Vec<u8>) -> Result<(), Status>,
) -> R {
    let mut buf = std::mem::take(&mut c.data_mut().scratch);
    buf.clear();
    let filled = fill(c.data_mut(), &mut buf);
    let result = match filled {
        Ok(()) => copy_out(c, &buf, ptr_ptr, size_ptr),
        Err(s) => Ok(s.code()),
    };
    c.data_mut().scratch = buf;
    result
}

// ------------------------------------------------------------ accessors --

fn map_ref(state: &HostState, t: i32) -> Result<&HeaderMap, Status> {
    let t = MapType::from_code(t).ok_or(Status::BadArgument)?;
    let unavailable = Status::BadArgument; // Envoy: "map not currently available"
    match t {
        MapType::HttpCallResponseHeaders => state.call_response.as_ref().map(|r| &r.headers).ok_or(unavailable),
        MapType::HttpCallResponseTrailers => state.call_response.as_ref().map(|r| &r.trailers).ok_or(unavailable),
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => Err(unavailable),
        _ => {
            let s = state.streams.get(&state.effective).ok_or(unavailable)?;
            match t {
                MapType::HttpRequestHeaders => s.request.headers.as_ref(),
                MapType::HttpRequestTrailers => s.request.trailers.as_ref(),
                MapType::HttpResponseHeaders => s.response.headers.as_ref(),
                _ => s.response.trailers.as_ref(),
            }
            .ok_or(unavailable)
        }
    }
}

fn map_mut(state: &mut HostState, t: i32) -> Result<&mut HeaderMap, Status> {
    let t = MapType::from_code(t).ok_or(Status::BadArgument)?;
    let unavailable = Status::BadArgument;
    match t {
        MapType::HttpCallResponseHeaders => state.call_response.as_mut().map(|r| &mut r.headers).ok_or(unavailable),
        MapType::HttpCallResponseTrailers => state.call_response.as_mut().map(|r| &mut r.trailers).ok_or(unavailable),
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => Err(unavailable),
        _ => {
            let effective = state.effective;
            let s = state.streams.get_mut(&effective).ok_or(unavailable)?;
            let dir = match t {
                MapType::HttpRequestHeaders | MapType::HttpRequestTrailers => &mut s.request,
                _ => &mut s.response,
            };
            match t {
                MapType::HttpRequestHeaders | MapType::HttpResponseHeaders => dir.headers.as_mut().ok_or(unavailable),
                _ => {
                    // Envoy lets a body callback at end of stream add
                    // trailers when the stream has none.
                    if dir.trailers.is_none() && dir.in_body_callback && dir.in_body_callback_eos {
                        dir.trailers = Some(HeaderMap::new());
                    }
                    dir.trailers.as_mut().ok_or(unavailable)
                }
            }
        }
    }
}

fn buffer_ref(state: &HostState, t: i32) -> Result<&Vec<u8>, Status> {
    let t = BufferType::from_code(t).ok_or(Status::BadArgument)?;
    match t {
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => {
            let s = state.streams.get(&state.effective).ok_or(Status::NotFound)?;
            let dir = if t == BufferType::HttpRequestBody { &s.request } else { &s.response };
            if dir.in_body_callback || dir.buffering {
                Ok(&dir.buffer)
            } else {
                Err(Status::NotFound)
            }
        }
        BufferType::HttpCallResponseBody => state.call_response.as_ref().map(|r| &r.body).ok_or(Status::NotFound),
        BufferType::VmConfiguration => Ok(&state.vm_config),
        BufferType::PluginConfiguration if state.configuring => Ok(&state.plugin_config),
        _ => Err(Status::NotFound),
    }
}

fn buffer_mut(state: &mut HostState, t: i32) -> Result<&mut Vec<u8>, Status> {
    let t = BufferType::from_code(t).ok_or(Status::BadArgument)?;
    match t {
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => {
            let effective = state.effective;
            let s = state.streams.get_mut(&effective).ok_or(Status::NotFound)?;
            let dir = if t == BufferType::HttpRequestBody { &mut s.request } else { &mut s.response };
            if dir.in_body_callback || dir.buffering {
                Ok(&mut dir.buffer)
            } else {
                Err(Status::NotFound)
            }
        }
        // Read-only in Envoy.
        BufferType::HttpCallResponseBody | BufferType::VmConfiguration | BufferType::PluginConfiguration => {
            Err(Status::BadArgument)
        }
        _ => Err(Status::NotFound),
    }
}

/// Looks a property up: the stream's own (test-set or guest-set), then the
/// ones Envoy derives from the stream's headers, then the plugin's.
pub(crate) fn lookup_property(state: &HostState, key: &[u8], out: &mut Vec<u8>) -> bool {
    if let Some(s) = state.streams.get(&state.effective) {
        if let Some(v) = s.properties.get(key) {
            out.extend_from_slice(v);
            return true;
        }
        if derived_property(s, key, out) {
            return true;
        }
    }
    if let Some(v) = state.properties.get(key) {
        out.extend_from_slice(v);
        return true;
    }
    false
}

fn derived_property(s: &crate::state::StreamState, key: &[u8], out: &mut Vec<u8>) -> bool {
    let mut parts = key.split(|b| *b == 0);
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return false;
    };
    let third = parts.next();
    let (dir, headers) = match first {
        b"request" => (true, s.request.headers.as_ref()),
        b"response" => (false, s.response.headers.as_ref()),
        _ => return false,
    };
    let Some(headers) = headers else {
        return false;
    };
    let header = |name: &str, out: &mut Vec<u8>| -> bool {
        match headers.get_bytes(name) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }
    };
    match (dir, second, third) {
        (true, b"path", None) => header(":path", out),
        (true, b"url_path", None) => match headers.get_bytes(":path") {
            Some(p) => {
                let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
                out.extend_from_slice(&p[..end]);
                true
            }
            None => false,
        },
        (true, b"host", None) => header(":authority", out),
        (true, b"method", None) => header(":method", out),
        (true, b"scheme", None) => header(":scheme", out),
        (true, b"id", None) => header("x-request-id", out),
        (false, b"code", None) => match headers.get(":status").and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(code) => {
                out.extend_from_slice(&code.to_le_bytes());
                true
            }
            None => false,
        },
        (_, b"headers", Some(name)) => match std::str::from_utf8(name) {
            Ok(name) => header(name, out),
            Err(_) => false,
        },
        _ => false,
    }
}

fn is_stream_type_valid(t: i32) -> bool {
    StreamType::from_code(t).is_some()
}

// ------------------------------------------------------------- linking --

/// Registers host functions and remembers their names.
pub(crate) struct Definer<'l> {
    linker: &'l mut Linker<HostState>,
    pub names: HashSet<(String, String)>,
}

impl<'l> Definer<'l> {
    fn def<P, A>(&mut self, module: &str, name: &str, f: impl IntoFunc<HostState, P, A>) -> wasmtime::Result<()> {
        self.names.insert((module.to_string(), name.to_string()));
        self.linker.func_wrap(module, name, f)?;
        Ok(())
    }
}

/// Defines every implemented import; returns their `(module, name)`s.
pub(crate) fn define_all(linker: &mut Linker<HostState>) -> wasmtime::Result<HashSet<(String, String)>> {
    let mut d = Definer { linker, names: HashSet::new() };
    define_env(&mut d)?;
    define_wasi(&mut d)?;
    Ok(d.names)
}

fn define_env(d: &mut Definer<'_>) -> wasmtime::Result<()> {
    const ENV: &str = "env";

    // ----- logging, clocks, timers
    d.def(ENV, "proxy_log", |mut c: C<'_>, level: i32, ptr: i32, len: i32| -> R {
        let Some(level) = LogLevel::from_code(level) else {
            return Ok(Status::BadArgument.code());
        };
        let r = with_guest(&mut c, ptr, len, |msg, state| {
            if level >= state.log_level {
                let entry =
                    LogEntry { level, context_id: state.effective, message: String::from_utf8_lossy(msg).into_owned() };
                state.logs.push(entry);
            }
        });
        Ok(code(r))
    })?;
    d.def(ENV, "proxy_get_log_level", |mut c: C<'_>, ptr: i32| -> R {
        let level = c.data().log_level as u32;
        Ok(code(write_u32(&mut c, ptr, level)))
    })?;
    d.def(ENV, "proxy_get_current_time_nanoseconds", |mut c: C<'_>, ptr: i32| -> R {
        let now = c.data().clock.realtime_ns();
        Ok(code(write_u64(&mut c, ptr, now)))
    })?;
    d.def(ENV, "proxy_set_tick_period_milliseconds", |mut c: C<'_>, period: i32| -> R {
        c.data_mut().tick_period_ms = period as u32;
        Ok(OK)
    })?;

    // ----- buffers
    d.def(
        ENV,
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, t: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| -> R {
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            return_bytes(&mut c, ptr_ptr, size_ptr, |state, out| {
                let buf = buffer_ref(state, t)?;
                if start > buf.len() {
                    return Err(Status::BadArgument);
                }
                let n = max.min(buf.len() - start);
                out.extend_from_slice(&buf[start..start + n]);
                Ok(())
            })
        },
    )?;
    d.def(ENV, "proxy_get_buffer_status", |mut c: C<'_>, t: i32, size_ptr: i32, flags_ptr: i32| -> R {
        let len = match buffer_ref(c.data(), t) {
            Ok(b) => b.len(),
            Err(s) => return Ok(s.code()),
        };
        let Ok(len) = u32::try_from(len) else {
            return Ok(Status::InternalFailure.code());
        };
        if write_u32(&mut c, size_ptr, len).is_err() || write_u32(&mut c, flags_ptr, 0).is_err() {
            return Ok(IMA);
        }
        Ok(OK)
    })?;
    d.def(ENV, "proxy_set_buffer_bytes", |mut c: C<'_>, t: i32, start: i32, size: i32, ptr: i32, len: i32| -> R {
        let r = with_guest(&mut c, ptr, len, |data, state| {
            buffer_mut(state, t).map(|buf| apply_set_buffer(buf, start as u32, size as u32, data))
        });
        Ok(match r {
            Ok(Ok(status)) => status.code(),
            Ok(Err(s)) | Err(s) => s.code(),
        })
    })?;

    // ----- header maps
    d.def(ENV, "proxy_get_header_map_pairs", |mut c: C<'_>, t: i32, ptr_ptr: i32, size_ptr: i32| -> R {
        return_bytes(&mut c, ptr_ptr, size_ptr, |state, out| {
            map_ref(state, t)?.serialize_into(out);
            Ok(())
        })
    })?;
    d.def(ENV, "proxy_get_header_map_size", |mut c: C<'_>, t: i32, size_ptr: i32| -> R {
        let size = match map_ref(c.data(), t) {
            Ok(m) => m.serialized_size(),
            Err(s) => return Ok(s.code()),
        };
        Ok(code(write_u32(&mut c, size_ptr, size as u32)))
    })?;
    d.def(ENV, "proxy_set_header_map_pairs", |mut c: C<'_>, t: i32, ptr: i32, len: i32| -> R {
        let r = with_guest(&mut c, ptr, len, |data, state| {
            let pairs = deserialize_pairs(data).ok_or(Status::BadArgument)?;
            let map = map_mut(state, t)?;
            let mut fresh = HeaderMap::new();
            for (k, v) in &pairs {
                fresh.add(&String::from_utf8_lossy(k), v);
            }
            *map = fresh;
            Ok(())
        });
        Ok(match r {
            Ok(r) => code(r),
            Err(s) => s.code(),
        })
    })?;
    d.def(
        ENV,
        "proxy_get_header_map_value",
        |mut c: C<'_>, t: i32, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32| -> R {
            return_bytes_for_key(&mut c, (kptr, klen), ptr_ptr, size_ptr, |key, state, out| {
                let map = map_ref(state, t)?;
                let key = String::from_utf8_lossy(key);
                // Envoy returns the first value of a repeated header.
                let v = map.get_bytes(&key).ok_or(Status::NotFound)?;
                out.extend_from_slice(v);
                Ok(())
            })
        },
    )?;
    d.def(
        ENV,
        "proxy_add_header_map_value",
        |mut c: C<'_>, t: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> R {
            let r = with_guest2(&mut c, (kptr, klen), (vptr, vlen), |k, v, state| {
                let map = map_mut(state, t)?;
                map.add(&String::from_utf8_lossy(k), v);
                Ok(())
            });
            Ok(match r {
                Ok(r) => code(r),
                Err(s) => s.code(),
            })
        },
    )?;
    d.def(
        ENV,
        "proxy_replace_header_map_value",
        |mut c: C<'_>, t: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> R {
            let r = with_guest2(&mut c, (kptr, klen), (vptr, vlen), |k, v, state| {
                let map = map_mut(state, t)?;
                map.replace(&String::from_utf8_lossy(k), v);
                Ok(())
            });
            Ok(match r {
                Ok(r) => code(r),
                Err(s) => s.code(),
            })
        },
    )?;
    d.def(ENV, "proxy_remove_header_map_value", |mut c: C<'_>, t: i32, kptr: i32, klen: i32| -> R {
        let r = with_guest(&mut c, kptr, klen, |k, state| {
            let map = map_mut(state, t)?;
            map.remove(&String::from_utf8_lossy(k));
            Ok(())
        });
        Ok(match r {
            Ok(r) => code(r),
            Err(s) => s.code(),
        })
    })?;

    // ----- properties
    d.def(ENV, "proxy_get_property", |mut c: C<'_>, pptr: i32, plen: i32, ptr_ptr: i32, size_ptr: i32| -> R {
        let path = match read(&mut c, pptr, plen) {
            Ok(p) => p,
            Err(s) => return Ok(s.code()),
        };
        return_bytes(&mut c, ptr_ptr, size_ptr, |state, out| {
            if lookup_property(state, &path, out) {
                Ok(())
            } else {
                Err(Status::NotFound)
            }
        })
    })?;
    d.def(ENV, "proxy_set_property", |mut c: C<'_>, pptr: i32, plen: i32, vptr: i32, vlen: i32| -> R {
        let r = with_guest2(&mut c, (pptr, plen), (vptr, vlen), |p, v, state| {
            let effective = state.effective;
            match state.streams.get_mut(&effective) {
                Some(s) => s.properties.insert(p.to_vec(), v.to_vec()),
                None => state.properties.insert(p.to_vec(), v.to_vec()),
            };
        });
        Ok(code(r))
    })?;

    // ----- shared data
    d.def(
        ENV,
        "proxy_get_shared_data",
        |mut c: C<'_>, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| -> R {
            let key = match read(&mut c, kptr, klen) {
                Ok(k) => k,
                Err(s) => return Ok(s.code()),
            };
            let vm_id = c.data().vm_id.clone();
            let found = c.data().shared.lock().data.get(&(vm_id, key)).cloned();
            let Some((value, cas)) = found else {
                return Ok(Status::NotFound.code());
            };
            if write_u32(&mut c, cas_ptr, cas).is_err() {
                return Ok(IMA);
            }
            copy_out(&mut c, &value, ptr_ptr, size_ptr)
        },
    )?;
    d.def(ENV, "proxy_set_shared_data", |mut c: C<'_>, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> R {
        let r = with_guest2(&mut c, (kptr, klen), (vptr, vlen), |k, v, state| {
            let mut shared = state.shared.lock();
            let key = (state.vm_id.clone(), k.to_vec());
            let cas = cas as u32;
            if let Some((_, current)) = shared.data.get(&key) {
                if cas != 0 && cas != *current {
                    return Status::CasMismatch;
                }
            }
            let next = shared.next_cas();
            shared.data.insert(key, (v.to_vec(), next));
            Status::Ok
        });
        Ok(match r {
            Ok(s) | Err(s) => s.code(),
        })
    })?;

    // ----- shared queues
    d.def(ENV, "proxy_register_shared_queue", |mut c: C<'_>, nptr: i32, nlen: i32, token_ptr: i32| -> R {
        let name = match read(&mut c, nptr, nlen) {
            Ok(n) => n,
            Err(s) => return Ok(s.code()),
        };
        let token = {
            let state = c.data();
            let mut shared = state.shared.lock();
            let key = (state.vm_id.clone(), name);
            match shared.queue_by_name.get(&key) {
                Some(t) => *t,
                None => {
                    shared.queues.push(SharedQueue {
                        owner_plugin: state.plugin_id,
                        owner_context: state.root_id,
                        items: Default::default(),
                    });
                    let t = shared.queues.len() as u32;
                    shared.queue_by_name.insert(key, t);
                    t
                }
            }
        };
        Ok(code(write_u32(&mut c, token_ptr, token)))
    })?;
    d.def(
        ENV,
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vptr: i32, vlen: i32, nptr: i32, nlen: i32, token_ptr: i32| -> R {
            let found = with_guest2(&mut c, (vptr, vlen), (nptr, nlen), |vm, name, state| {
                let key = (String::from_utf8_lossy(vm).into_owned(), name.to_vec());
                state.shared.lock().queue_by_name.get(&key).copied()
            });
            match found {
                Err(s) => Ok(s.code()),
                Ok(None) => Ok(Status::NotFound.code()),
                Ok(Some(t)) => Ok(code(write_u32(&mut c, token_ptr, t))),
            }
        },
    )?;
    d.def(ENV, "proxy_enqueue_shared_queue", |mut c: C<'_>, token: i32, vptr: i32, vlen: i32| -> R {
        let r = with_guest(&mut c, vptr, vlen, |v, state| {
            let mut shared = state.shared.lock();
            let token = token as u32;
            let idx = (token as usize).wrapping_sub(1);
            let Some(q) = shared.queues.get_mut(idx) else {
                return Status::NotFound;
            };
            q.items.push_back(v.to_vec());
            let (owner, ctx) = (q.owner_plugin, q.owner_context);
            shared.notifications.entry(owner).or_default().push_back((ctx, token));
            Status::Ok
        });
        Ok(match r {
            Ok(s) | Err(s) => s.code(),
        })
    })?;
    d.def(ENV, "proxy_dequeue_shared_queue", |mut c: C<'_>, token: i32, ptr_ptr: i32, size_ptr: i32| -> R {
        let item = {
            let mut shared = c.data().shared.lock();
            let idx = (token as u32 as usize).wrapping_sub(1);
            match shared.queues.get_mut(idx) {
                None => return Ok(Status::NotFound.code()),
                Some(q) => match q.items.pop_front() {
                    None => return Ok(Status::Empty.code()),
                    Some(item) => item,
                },
            }
        };
        copy_out(&mut c, &item, ptr_ptr, size_ptr)
    })?;

    // ----- metrics
    d.def(ENV, "proxy_define_metric", |mut c: C<'_>, t: i32, nptr: i32, nlen: i32, id_ptr: i32| -> R {
        let Some(t) = MetricType::from_code(t) else {
            return Ok(Status::BadArgument.code());
        };
        let name = match read(&mut c, nptr, nlen) {
            Ok(n) => String::from_utf8_lossy(&n).into_owned(),
            Err(s) => return Ok(s.code()),
        };
        let id = {
            let state = c.data_mut();
            let key = (t, name);
            match state.metric_by_key.get(&key) {
                Some(id) => *id,
                None => {
                    // Like Envoy, the low two bits carry the type.
                    let id = ((state.metric_ids.len() as u32 + 1) << 2) | t as u32;
                    state.shared.lock().metrics.entry(key.clone()).or_insert(match t {
                        MetricType::Counter => MetricValue::Counter(0),
                        MetricType::Gauge => MetricValue::Gauge(0),
                        MetricType::Histogram => MetricValue::Histogram(Vec::new()),
                    });
                    state.metric_ids.insert(id, key.clone());
                    state.metric_by_key.insert(key, id);
                    id
                }
            }
        };
        Ok(code(write_u32(&mut c, id_ptr, id)))
    })?;
    d.def(ENV, "proxy_increment_metric", |c: C<'_>, id: i32, delta: i64| -> R {
        let state = c.data();
        let Some(key) = state.metric_ids.get(&(id as u32)) else {
            return Ok(Status::NotFound.code());
        };
        let mut shared = state.shared.lock();
        let Some(m) = shared.metrics.get_mut(key) else {
            return Ok(Status::NotFound.code());
        };
        // Envoy: counters only go up (by > 0); gauges both ways;
        // histograms cannot be incremented.
        let s = match m {
            MetricValue::Counter(v) if delta > 0 => {
                *v = v.saturating_add(delta as u64);
                Status::Ok
            }
            MetricValue::Gauge(v) => {
                *v = if delta >= 0 { v.saturating_add(delta as u64) } else { v.saturating_sub(delta.unsigned_abs()) };
                Status::Ok
            }
            _ => Status::BadArgument,
        };
        Ok(s.code())
    })?;
    d.def(ENV, "proxy_record_metric", |c: C<'_>, id: i32, value: i64| -> R {
        let state = c.data();
        let Some(key) = state.metric_ids.get(&(id as u32)) else {
            return Ok(Status::NotFound.code());
        };
        let mut shared = state.shared.lock();
        let Some(m) = shared.metrics.get_mut(key) else {
            return Ok(Status::NotFound.code());
        };
        let value = value as u64;
        match m {
            MetricValue::Counter(v) => *v = v.saturating_add(value),
            MetricValue::Gauge(v) => *v = value,
            MetricValue::Histogram(vs) => vs.push(value),
        }
        Ok(OK)
    })?;
    d.def(ENV, "proxy_get_metric", |mut c: C<'_>, id: i32, ptr: i32| -> R {
        let value = {
            let state = c.data();
            let Some(key) = state.metric_ids.get(&(id as u32)) else {
                return Ok(Status::NotFound.code());
            };
            let shared = state.shared.lock();
            match shared.metrics.get(key) {
                None => return Ok(Status::NotFound.code()),
                Some(MetricValue::Histogram(_)) => return Ok(Status::BadArgument.code()),
                Some(m) => m.value().unwrap_or(0),
            }
        };
        Ok(code(write_u64(&mut c, ptr, value)))
    })?;

    // ----- stream control
    d.def(ENV, "proxy_continue_stream", |mut c: C<'_>, t: i32| -> R {
        if !is_stream_type_valid(t) {
            return Ok(Status::BadArgument.code());
        }
        let state = c.data_mut();
        let effective = state.effective;
        if let Some(s) = state.streams.get_mut(&effective) {
            match StreamType::from_code(t) {
                Some(StreamType::HttpRequest) => s.deferred.continue_request = true,
                Some(StreamType::HttpResponse) => s.deferred.continue_response = true,
                _ => {}
            }
        }
        Ok(OK)
    })?;
    d.def(ENV, "proxy_close_stream", |mut c: C<'_>, t: i32| -> R {
        if !is_stream_type_valid(t) {
            return Ok(Status::BadArgument.code());
        }
        let state = c.data_mut();
        let effective = state.effective;
        if let Some(s) = state.streams.get_mut(&effective) {
            match StreamType::from_code(t) {
                Some(StreamType::HttpRequest) => s.deferred.close_request = true,
                Some(StreamType::HttpResponse) => s.deferred.close_response = true,
                _ => {}
            }
        }
        Ok(OK)
    })?;
    d.def(
        ENV,
        "proxy_send_local_response",
        |mut c: C<'_>, status: i32, dptr: i32, dlen: i32, bptr: i32, blen: i32, hptr: i32, hlen: i32, grpc: i32| -> R {
            let details = match read(&mut c, dptr, dlen) {
                Ok(d) => String::from_utf8_lossy(&d).into_owned(),
                Err(s) => return Ok(s.code()),
            };
            let body = match read(&mut c, bptr, blen) {
                Ok(b) => b,
                Err(s) => return Ok(s.code()),
            };
            let headers = match read(&mut c, hptr, hlen) {
                Ok(h) => h,
                Err(s) => return Ok(s.code()),
            };
            let Some(pairs) = deserialize_pairs(&headers) else {
                return Ok(Status::BadArgument.code());
            };
            let mut map = HeaderMap::new();
            for (k, v) in &pairs {
                map.add(&String::from_utf8_lossy(k), v);
            }
            let state = c.data_mut();
            let effective = state.effective;
            // Envoy silently does nothing outside a stream context.
            if let Some(s) = state.streams.get_mut(&effective) {
                if s.finished || s.local_reply_in_progress || s.deferred.local_response.is_some() {
                    s.ignored_local_responses += 1;
                } else {
                    s.deferred.local_response = Some(LocalResponse {
                        status: status as u32,
                        details,
                        body,
                        headers: map,
                        grpc_status: grpc,
                        from_filter: true,
                    });
                }
            }
            Ok(OK)
        },
    )?;

    // ----- HTTP calls
    d.def(
        ENV,
        "proxy_http_call",
        |mut c: C<'_>,
         uptr: i32,
         ulen: i32,
         hptr: i32,
         hlen: i32,
         bptr: i32,
         blen: i32,
         tptr: i32,
         tlen: i32,
         timeout: i32,
         token_ptr: i32|
         -> R {
            let read_all = |c: &mut C<'_>| -> Result<_, Status> {
                Ok((read(c, uptr, ulen)?, read(c, hptr, hlen)?, read(c, bptr, blen)?, read(c, tptr, tlen)?))
            };
            let (upstream, headers, body, trailers) = match read_all(&mut c) {
                Ok(v) => v,
                Err(s) => return Ok(s.code()),
            };
            let to_map = |bytes: &[u8]| -> Option<HeaderMap> {
                let pairs = deserialize_pairs(bytes)?;
                let mut map = HeaderMap::new();
                for (k, v) in &pairs {
                    map.add(&String::from_utf8_lossy(k), v);
                }
                Some(map)
            };
            let (Some(headers), Some(trailers)) = (to_map(&headers), to_map(&trailers)) else {
                return Ok(Status::BadArgument.code());
            };
            let upstream = String::from_utf8_lossy(&upstream).into_owned();
            let state = c.data_mut();
            if let Some(known) = &state.clusters {
                if !known.contains(&upstream) {
                    return Ok(Status::BadArgument.code());
                }
            }
            if [":method", ":path", ":authority"].iter().any(|h| !headers.contains(h)) {
                return Ok(Status::BadArgument.code());
            }
            state.next_token = state.next_token.wrapping_add(1).max(1);
            let token = state.next_token;
            if write_u32(&mut c, token_ptr, token).is_err() {
                return Ok(IMA);
            }
            let state = c.data_mut();
            let context_id = state.effective;
            state.http_calls.push(HttpCall {
                token,
                context_id,
                upstream,
                headers,
                body,
                trailers,
                timeout: Duration::from_millis(timeout as u32 as u64),
                state: HttpCallState::Pending,
            });
            Ok(OK)
        },
    )?;

    // ----- contexts
    d.def(ENV, "proxy_set_effective_context", |mut c: C<'_>, id: i32| -> R {
        let state = c.data_mut();
        let id = id as u32;
        let known = id == state.root_id || state.streams.get(&id).is_some_and(|s| !s.finished);
        if !known {
            return Ok(Status::BadArgument.code());
        }
        state.effective = id;
        Ok(OK)
    })?;
    d.def(ENV, "proxy_done", |mut c: C<'_>| -> R {
        let state = c.data_mut();
        if state.root_done_pending {
            state.proxy_done_called = true;
            Ok(OK)
        } else {
            Ok(Status::NotFound.code())
        }
    })?;
    Ok(())
}

fn define_wasi(d: &mut Definer<'_>) -> wasmtime::Result<()> {
    const W: &str = "wasi_snapshot_preview1";
    const FAULT: i32 = errno::FAULT;

    d.def(W, "args_sizes_get", |mut c: C<'_>, argc: i32, size: i32| -> R {
        if write_u32(&mut c, argc, 0).is_err() || write_u32(&mut c, size, 0).is_err() {
            return Ok(FAULT);
        }
        Ok(errno::SUCCESS)
    })?;
    d.def(W, "args_get", |_c: C<'_>, _argv: i32, _buf: i32| -> R { Ok(errno::SUCCESS) })?;
    d.def(W, "environ_sizes_get", |mut c: C<'_>, count_ptr: i32, size_ptr: i32| -> R {
        let env = &c.data().env;
        let count = env.len() as u32;
        let size = env.iter().map(|e| e.len() + 1).sum::<usize>() as u32;
        if write_u32(&mut c, count_ptr, count).is_err() || write_u32(&mut c, size_ptr, size).is_err() {
            return Ok(FAULT);
        }
        Ok(errno::SUCCESS)
    })?;
    d.def(W, "environ_get", |mut c: C<'_>, environ: i32, buf: i32| -> R {
        let env = c.data().env.clone();
        let mut at = buf as u32;
        for (i, e) in env.iter().enumerate() {
            let slot = (environ as u32).wrapping_add(4 * i as u32);
            let mut s = e.clone();
            s.push(0);
            if write_u32(&mut c, slot as i32, at).is_err() || write_bytes(&mut c, at as i32, &s).is_err() {
                return Ok(FAULT);
            }
            at = at.wrapping_add(s.len() as u32);
        }
        Ok(errno::SUCCESS)
    })?;
    d.def(W, "clock_time_get", |mut c: C<'_>, id: i32, _precision: i64, out: i32| -> R {
        let clock = c.data().clock;
        let now = match id {
            0 => clock.realtime_ns(),
            1 => clock.monotonic_ns(),
            _ => return Ok(errno::NOTSUP),
        };
        Ok(match write_u64(&mut c, out, now) {
            Ok(()) => errno::SUCCESS,
            Err(_) => FAULT,
        })
    })?;
    d.def(W, "clock_res_get", |mut c: C<'_>, id: i32, out: i32| -> R {
        if !(0..=1).contains(&id) {
            return Ok(errno::NOTSUP);
        }
        Ok(match write_u64(&mut c, out, 1) {
            Ok(()) => errno::SUCCESS,
            Err(_) => FAULT,
        })
    })?;
    d.def(W, "fd_write", |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| -> R {
        if fd != 1 && fd != 2 {
            return Ok(errno::BADF);
        }
        let Some(mem) = c.data().memory else {
            return Ok(FAULT);
        };
        let (data, state) = mem.data_and_store_mut(&mut c);
        let Some(n) = (iovs_len as u32).checked_mul(8) else {
            return Ok(FAULT);
        };
        let Some(list) = range(data.len(), iovs, n as i32) else {
            return Ok(FAULT);
        };
        let sink = if fd == 1 { &mut state.stdout } else { &mut state.stderr };
        let mut total: u32 = 0;
        for iov in data[list].chunks_exact(8) {
            let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
            let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
            let Some(r) = range(data.len(), ptr, len) else {
                return Ok(FAULT);
            };
            total = total.wrapping_add(r.len() as u32);
            sink.extend_from_slice(&data[r]);
        }
        Ok(match write_u32(&mut c, nwritten, total) {
            Ok(()) => errno::SUCCESS,
            Err(_) => FAULT,
        })
    })?;
    d.def(W, "fd_read", |mut c: C<'_>, fd: i32, _iovs: i32, _len: i32, nread: i32| -> R {
        if fd != 0 {
            return Ok(errno::BADF);
        }
        // stdin is empty.
        Ok(match write_u32(&mut c, nread, 0) {
            Ok(()) => errno::SUCCESS,
            Err(_) => FAULT,
        })
    })?;
    d.def(W, "fd_close", |_c: C<'_>, _fd: i32| -> R { Ok(errno::BADF) })?;
    d.def(W, "fd_seek", |_c: C<'_>, fd: i32, _off: i64, _whence: i32, _out: i32| -> R {
        Ok(if (0..=2).contains(&fd) { errno::SPIPE } else { errno::BADF })
    })?;
    d.def(W, "fd_fdstat_get", |mut c: C<'_>, fd: i32, out: i32| -> R {
        if !(0..=2).contains(&fd) {
            return Ok(errno::BADF);
        }
        // filetype CHARACTER_DEVICE (2), no flags, rights for read/write.
        let mut stat = [0u8; 24];
        stat[0] = 2;
        let rights: u64 = if fd == 0 { 1 << 1 } else { 1 << 6 };
        stat[8..16].copy_from_slice(&rights.to_le_bytes());
        Ok(match write_bytes(&mut c, out, &stat) {
            Ok(()) => errno::SUCCESS,
            Err(_) => FAULT,
        })
    })?;
    d.def(W, "fd_prestat_get", |_c: C<'_>, _fd: i32, _out: i32| -> R { Ok(errno::BADF) })?;
    d.def(W, "fd_prestat_dir_name", |_c: C<'_>, _fd: i32, _p: i32, _l: i32| -> R { Ok(errno::BADF) })?;
    d.def(W, "fd_filestat_get", |_c: C<'_>, _fd: i32, _out: i32| -> R { Ok(errno::BADF) })?;
    d.def(W, "fd_sync", |_c: C<'_>, _fd: i32| -> R { Ok(errno::BADF) })?;
    d.def(W, "random_get", |mut c: C<'_>, buf: i32, len: i32| -> R {
        let Some(mem) = c.data().memory else {
            return Ok(FAULT);
        };
        let (data, state) = mem.data_and_store_mut(&mut c);
        let Some(r) = range(data.len(), buf, len) else {
            return Ok(FAULT);
        };
        for chunk in data[r].chunks_mut(8) {
            let word = state.next_random().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(errno::SUCCESS)
    })?;
    d.def(W, "sched_yield", |_c: C<'_>| -> R { Ok(errno::SUCCESS) })?;
    d.def(W, "poll_oneoff", |_c: C<'_>, _in: i32, _out: i32, _n: i32, _ev: i32| -> R { Ok(errno::NOTSUP) })?;
    d.def(W, "proc_exit", |_c: C<'_>, code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(ProcExit(code)))
    })?;
    Ok(())
}

/// The errno/status an unimplemented import returns.
pub(crate) fn unimplemented_code(module: &str) -> i32 {
    if module == "wasi_snapshot_preview1" {
        errno::NOSYS
    } else {
        abi::Status::Unimplemented.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(range(10, 0, 10), Some(0..10));
        assert_eq!(range(10, 5, 6), None);
        assert_eq!(range(10, -1, 1), None);
        assert_eq!(range(usize::MAX, -1, -1), Some(u32::MAX as usize..2 * u32::MAX as usize));
        assert_eq!(range(10, 10, 0), Some(10..10));
        assert_eq!(range(10, 11, 0), None);
    }
}
