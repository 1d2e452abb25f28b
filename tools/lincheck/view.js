// lincheck's HTML view of a checked history: the tooltip of an operation,
// lighting up its bar and its line in the lists together, and scrolling
// each key that failed to where it failed.
//
// view.py writes the page: each bar and line of the lists carries the index
// of its operation (data-op), and each bar its tooltip (data-tip).
"use strict";
(() => {
  const tip = document.getElementById("tip");
  let lit = [];
  function light(target) {
    for (const el of lit) el.classList.remove("hl");
    lit = [];
    if (target === null) return;
    const section = target.closest("section");
    lit = Array.from(section.querySelectorAll(
      "[data-op='" + target.dataset.op + "']"));
    for (const el of lit) el.classList.add("hl");
  }
  // The tooltip goes below and right of the pointer, or above it near the
  // bottom of the window.
  function place(event) {
    if (tip.hidden) return;
    const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
    const y = event.clientY + 18 + tip.offsetHeight > window.innerHeight
      ? event.clientY - tip.offsetHeight - 10 : event.clientY + 18;
    tip.style.left = Math.max(x, 0) + "px";
    tip.style.top = Math.max(y, 0) + "px";
  }
  document.addEventListener("mouseover", (event) => {
    const target = event.target.closest("[data-op]");
    light(target);
    if (target !== null && target.dataset.tip !== undefined) {
      tip.textContent = target.dataset.tip;
      tip.hidden = false;
      place(event);
    } else {
      tip.hidden = true;
    }
  });
  document.addEventListener("mousemove", place);
  // Start each failed key's timeline at its first blocked operation, and
  // each prefix list at its end, where the trouble is.
  for (const section of document.querySelectorAll("section.bad")) {
    const first = section.querySelector(".op.blocked");
    const scroll = section.querySelector(".scroll");
    if (first !== null) {
      const at = first.getBoundingClientRect().left
        - scroll.getBoundingClientRect().left;
      scroll.scrollLeft = Math.max(at - scroll.clientWidth / 2, 0);
    }
    const order = section.querySelector(".order");
    if (order !== null) order.scrollTop = order.scrollHeight;
  }
})();
