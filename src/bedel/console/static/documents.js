// The documents page: drop files on the upload form, see which are chosen, and hear before
// sending that they are over the size limit. The plain file input does all of it without this
// script (and by keyboard); listeners sit on the document, so pages swapped in by htmx need no
// new ones and running this file again adds none.
(function () {
  "use strict";
  if (window.bedelDocuments) {
    return;
  }
  window.bedelDocuments = true;

  function zoneOf(event) {
    return event.target instanceof Element ? event.target.closest(".dropzone") : null;
  }

  function listChosen(input) {
    var list = input.form.querySelector(".chosen");
    list.replaceChildren();
    Array.prototype.forEach.call(input.files, function (file) {
      var item = document.createElement("li");
      item.textContent = file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)";
      list.appendChild(item);
    });
  }

  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var zone = zoneOf(event);
      if (zone) {
        event.preventDefault();
        zone.classList.add("dragging");
      }
    });
  });

  document.addEventListener("dragleave", function (event) {
    var zone = zoneOf(event);
    if (zone && !zone.contains(event.relatedTarget)) {
      zone.classList.remove("dragging");
    }
  });

  document.addEventListener("drop", function (event) {
    var zone = zoneOf(event);
    if (!zone) {
      return;
    }
    event.preventDefault();
    zone.classList.remove("dragging");
    var input = zone.querySelector("input[type=file]");
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLInputElement && event.target.closest(".dropzone")) {
      listChosen(event.target);
    }
  });

  // Capturing, so a form over the limit is stopped before htmx sends it.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.dataset.maxBytes) {
        return;
      }
      var total = 0;
      form.querySelectorAll("input[type=file]").forEach(function (input) {
        Array.prototype.forEach.call(input.files, function (file) {
          total += file.size;
        });
      });
      var alert = form.querySelector("p[role=alert]");
      if (total > Number(form.dataset.maxBytes)) {
        event.preventDefault();
        event.stopPropagation();
        alert.textContent = form.dataset.tooLarge;
        alert.hidden = false;
      } else {
        alert.hidden = true;
      }
    },
    true
  );
})();
