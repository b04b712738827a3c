/* Ferry admin panel: confirmation before destructive actions. No inline script anywhere:
 * this file and htmx are the panel's only scripts (CSP script-src 'self').
 *
 * - A form with data-confirm="question" asks in a dialog before it is sent, and sends
 *   confirmed=yes when the answer is yes (without this script the server asks on a page).
 * - A form with data-typed-confirm="name" keeps its submit button disabled until the
 *   field "confirm" repeats the name exactly (the server checks it again).
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (!question) return;
    if (!window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    var flag = form.querySelector('input[name="confirmed"]');
    if (flag) flag.value = "yes";
  }, true);

  function watchTyped(form) {
    var expected = form.getAttribute("data-typed-confirm");
    var field = form.querySelector('input[name="confirm"]');
    var button = form.querySelector('button[type="submit"]');
    if (!field || !button) return;
    var update = function () { button.disabled = field.value !== expected; };
    field.addEventListener("input", update);
    update();
  }

  function init(root) {
    var forms = root.querySelectorAll("form[data-typed-confirm]");
    for (var i = 0; i < forms.length; i++) watchTyped(forms[i]);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (event) { init(event.target); });
})();
