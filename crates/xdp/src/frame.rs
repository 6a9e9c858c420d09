//! Packet frames in the low 2 GiB of the address space.
//!
//! `struct xdp_md` exposes `data`, `data_end` and `data_meta` as 32-bit
//! fields. The kernel's verifier rewrites every such load into a 64-bit
//! load of the real pointer. uxdp gets the identical result without any
//! rewriting: frames are mapped with `MAP_32BIT`, so every packet pointer
//! fits in 32 bits and a program's 32-bit context load, zero-extended, *is*
//! the pointer — through register copies, spills and tail calls alike.

use crate::XdpError;

/// The size of one frame (the kernel's page-sized XDP buffer).
pub const FRAME_SIZE: usize = 4096;

/// One page-aligned, page-sized frame whose address fits in 32 bits.
pub struct Frame {
    ptr: *mut u8,
}

// SAFETY: the frame is plain memory owned by this value.
unsafe impl Send for Frame {}

impl Frame {
    /// Maps a zeroed frame below 2 GiB.
    pub fn new() -> Result<Frame, XdpError> {
        // SAFETY: anonymous private mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                FRAME_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(XdpError::FrameAlloc(std::io::Error::last_os_error().to_string()));
        }
        let ptr = p as *mut u8;
        debug_assert!((ptr as u64) + FRAME_SIZE as u64 <= u32::MAX as u64);
        Ok(Frame { ptr })
    }

    /// Start address.
    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: FRAME_SIZE bytes mapped for the lifetime of self.
        unsafe { core::slice::from_raw_parts(self.ptr, FRAME_SIZE) }
    }

    /// The frame's bytes, mutably.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, FRAME_SIZE) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this size.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, FRAME_SIZE) };
    }
}
