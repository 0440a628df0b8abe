// Reimagine tab (sd-webui-reimagine).
// In the WebUI this file is loaded like every extension's javascript/*.js; the standalone app installs the same file
// on page load. WebUI functions (randomId, requestProgress, showSubmitButtons, ...) are used only when present.

function reimagineApp() {
    if (typeof gradioApp === "function") return gradioApp();
    const elems = document.getElementsByTagName("gradio-app");
    const elem = elems.length === 0 ? document : elems[0];
    return elem.shadowRoot ? elem.shadowRoot : document;
}

function reimagineById(id) {
    return reimagineApp().querySelector("#" + id) || document.getElementById(id);
}

function reimagineInWebUI() {
    return typeof requestProgress === "function" && typeof randomId === "function";
}

// Generate: a task id for the WebUI's progress bar + live preview under the gallery (like txt2img's submit()).
function submit_reimagine() {
    var res = Array.from(arguments);
    if (!reimagineInWebUI()) return res;
    if (typeof showSubmitButtons === "function") showSubmitButtons("reimagine", false);
    var id = randomId();
    requestProgress(id, reimagineById("reimagine_gallery_container"), reimagineById("reimagine_gallery"), function() {
        if (typeof showSubmitButtons === "function") showSubmitButtons("reimagine", true);
    });
    res[0] = id;
    return res;
}

// The index of the selected output in the Reimagine gallery (0 when none is selected), read from the page as the
// WebUI's selected_gallery_index() does: gradio marks the selected thumbnail with the class "selected" (3.41 and
// 4.40); the preview strip (.thumbnail-small) is what the user clicks in preview mode, else the grid.
function reimagine_selected_index() {
    var gallery = reimagineById("reimagine_gallery");
    if (!gallery) return 0;
    var strip = Array.from(gallery.querySelectorAll(".thumbnail-item.thumbnail-small"));
    var items = strip.length ? strip : Array.from(gallery.querySelectorAll(".thumbnail-item"));
    var index = items.findIndex(function(el) {
        return el.classList.contains("selected");
    });
    return index < 0 ? 0 : index;
}

// "Refine with SDXL" runs in the same output panel, with the same progress bar; it is called with exactly its inputs
// [task_id, gallery, selected index, ...] (gradio 4 would append the outputs) and returns one value per input.
function submit_reimagine_refine() {
    var res = submit_reimagine.apply(null, arguments);
    res[2] = reimagine_selected_index();
    return res;
}

// After "Refine the selected image": the gallery shows the batch and, last, the refined image; select that one (its
// infotext follows through reimagine_show_selected_soon) once gradio has drawn all `count` thumbnails.
function reimagine_select_newest(count, tries) {
    var gallery = reimagineById("reimagine_gallery");
    var strip = gallery ? Array.from(gallery.querySelectorAll(".thumbnail-item.thumbnail-small")) : [];
    var items = strip.length ? strip : (gallery ? Array.from(gallery.querySelectorAll(".thumbnail-item")) : []);
    if (count > 0 && items.length >= count) {
        if (!items[count - 1].classList.contains("selected")) items[count - 1].click();
    } else if ((tries || 0) < 40) {
        setTimeout(function() { reimagine_select_newest(count, (tries || 0) + 1); }, 50);
    }
}

// A click on a thumbnail (or the arrow keys in preview) shows that output's infotext, as txt2img does: the hidden
// button runs the handler with the selected index.
function reimagine_show_selected_soon(event) {
    var path = event.composedPath ? event.composedPath() : [];
    if (!path.some(function(el) { return el && el.id === "reimagine_gallery"; })) return;
    if (event.type === "keydown" && event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    setTimeout(function() {
        var button = reimagineById("reimagine_generation_info_button");
        if (button) button.click();
    }, 0);
}
document.addEventListener("click", reimagine_show_selected_soon, true);
document.addEventListener("keydown", reimagine_show_selected_soon, true);

function reimagine_interrupting() {
    if (typeof showSubmitInterruptingPlaceholder === "function") showSubmitInterruptingPlaceholder("reimagine");
    return [];
}

// "Vary again": after the selected output became image 1, start a run.
function reimagine_click_generate() {
    var button = reimagineById("reimagine_generate");
    if (button) button.click();
    return [];
}

// The button that opens the top-level tab whose panel is `panelId`, in every gradio the tab runs on: gradio 4.40 and
// 6.x name the panel on the button (aria-controls); gradio 3.41/3.43 render `.tab-nav` buttons in the panels' order;
// gradio 6 moves tabs that do not fit into an overflow menu of plain buttons, found by title (it may be translated,
// hence the last resort).
function reimagineTabButton(panelId, title) {
    var app = reimagineApp();
    var named = app.querySelector('button[role="tab"][aria-controls="' + panelId + '"]');
    if (named) return named;
    var panel = reimagineById(panelId);
    var tabs = panel ? panel.parentElement : null;
    var nav = tabs ? tabs.querySelector(":scope > .tab-nav") : null;
    if (nav) {
        var items = Array.from(tabs.children).filter(function(el) {
            return el.classList.contains("tabitem");
        });
        var buttons = Array.from(nav.querySelectorAll("button"));
        var index = items.indexOf(panel);
        if (index >= 0 && index < buttons.length) return buttons[index];
    }
    var candidates = Array.from(app.querySelectorAll(".tab-nav button, .overflow-dropdown button"));
    return candidates.find(function(b) {
        return b.textContent.trim() === title;
    }) || null;
}

// Called by the WebUI's paste bindings ("Send to Reimagine" buttons, PNG Info): open the Reimagine tab.
function switch_to_reimagine() {
    var button = reimagineTabButton("tab_reimagine", "Reimagine");
    if (button) button.click();
    return Array.from(arguments);
}

// The paste binding also calls recalculate_prompts_<tab> (token counters); the tab has none.
function recalculate_prompts_reimagine() {
    return Array.from(arguments);
}

// Standalone app: txt2img's keyboard shortcuts on our prompts (the WebUI's script.js already does this for every tab):
// Ctrl+Enter generates, Esc interrupts.
document.addEventListener("keydown", function(e) {
    if (typeof get_uiCurrentTabContent === "function") return;
    var target = e.target;
    if (!target || !target.closest || !target.closest("#reimagine_prompt, #reimagine_neg_prompt")) return;
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        reimagine_click_generate();
    } else if (e.key === "Escape") {
        var interrupt = reimagineById("reimagine_interrupt");
        if (interrupt) interrupt.click();
    }
});
