/* portradar: light or dark theme, before the page is painted.
 *
 * Loaded (not deferred) in <head>, so the theme applies before the first paint (no flash of
 * the other theme). The theme in force is always <html data-theme="light|dark"> (the one
 * rule dashboard.css keys its dark colours on): the user's choice, or with no choice the OS
 * preference (prefers-color-scheme). A choice is kept in localStorage ("portradar.theme")
 * only while it differs from the OS preference, so switching back to what the OS says means
 * following the OS again. window.portradarTheme is used by dashboard.js
 * (the toggle, and drawing the charts again on a switch). Other tabs follow a switch (the
 * storage event) and the OS switching too, when no choice is kept.
 */
(function () {
  "use strict";

  var KEY = "portradar.theme";
  var root = document.documentElement;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  var memory = null;  // the choice, when localStorage is unavailable
  var listeners = [];

  function system() {
    return media && media.matches ? "dark" : "light";
  }

  function chosen() {
    var value = memory;
    try {
      value = localStorage.getItem(KEY);
    } catch (e) { /* storage disabled: the in-memory choice */ }
    return value === "light" || value === "dark" ? value : null;
  }

  function current() {
    return chosen() || system();
  }

  function apply() {
    root.setAttribute("data-theme", current());
  }

  function changed() {
    apply();
    for (var i = 0; i < listeners.length; i++) listeners[i](current());
  }

  function set(theme) {
    memory = theme === system() ? null : theme;
    try {
      if (memory) localStorage.setItem(KEY, memory);
      else localStorage.removeItem(KEY);
    } catch (e) { /* kept in memory for this page */ }
    changed();
  }

  if (media) {
    var onSystem = function () {
      if (!chosen()) changed();
    };
    if (media.addEventListener) media.addEventListener("change", onSystem);
    else if (media.addListener) media.addListener(onSystem);
  }
  window.addEventListener("storage", function (e) {
    if (e.key === KEY || e.key === null) changed();
  });

  window.portradarTheme = {
    current: current,
    chosen: chosen,
    set: set,
    onChange: function (fn) { listeners.push(fn); },
  };
  apply();
})();
