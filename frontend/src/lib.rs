//! The browser half of the console: `wasm-bindgen` exports `hydrate`, which
//! the hydration script Leptos puts in the page calls once the wasm loads.
//! Build: `make site` (see the top-level Makefile).

// Leptos view types are deeply nested; the default limit (128) is too low
// when the whole app is monomorphised here.
#![recursion_limit = "256"]

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
