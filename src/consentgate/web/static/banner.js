/* consentgate: progressive enhancement; the forms work without JS */
(function(){"use strict";
var d=document,cs=d.currentScript,N=cs&&cs.nonce,B=d.getElementById("consentgate-banner"),
each=function(s,f){[].forEach.call(d.querySelectorAll(s),f)},
has=function(g,c){return g.indexOf(c)>=0};
function ok(el,g){var n=(el.getAttribute("data-consent")||"").split(/\s+/).filter(Boolean);
return n.length>0&&n.every(function(c){return has(g,c)})}
function activate(g){
each('script[type="text/plain"][data-consent]',function(o){if(!ok(o,g))return;
var s=d.createElement("script");
[].forEach.call(o.attributes,function(a){
if(!/^(type|data-src|data-type)$/.test(a.name))s.setAttribute(a.name,a.value)});
if(o.hasAttribute("data-type"))s.type=o.getAttribute("data-type");
if(o.hasAttribute("data-src")){s.src=o.getAttribute("data-src");s.async=false}else s.text=o.text;
if(o.nonce||N)s.nonce=o.nonce||N;
o.parentNode.replaceChild(s,o)});
each("iframe[data-consent][data-src]",function(f){if(ok(f,g)){f.src=f.getAttribute("data-src");f.removeAttribute("data-src")}})}
function done(form,r){var g=r.granted,a,st=d.getElementById("cg-status");activate(g);
if(form.getAttribute("data-cg")==="banner"){
a=d.getElementById("consentgate-settings-link");
if(!a){a=d.createElement("a");a.id="consentgate-settings-link";a.lang=B.lang;
a.href=r.settings_url||B.getAttribute("data-settings-url");
a.textContent=B.getAttribute("data-settings-label");d.body.appendChild(a)}
B.parentNode.removeChild(B);a.focus();return}
each('input[name="category"]',function(i){i.checked=has(g,i.value)});
if(st){each("[data-cg-state]",function(c){c.textContent=st.getAttribute(has(g,c.getAttribute("data-cg-state"))?"data-on":"data-off")});
st.textContent=st.getAttribute("data-saved")}}
d.addEventListener("submit",function(e){
var form=e.target,b=e.submitter,f=form.elements,cats=[];
if(!form.getAttribute("data-cg")||!b||b.name!=="action"||b.form!==form||!window.fetch)return;
e.preventDefault();
function fallback(){var h=d.createElement("input");h.type="hidden";h.name="action";h.value=b.value;
form.appendChild(h);form.submit()}
[].forEach.call(form.querySelectorAll('input[name="category"]:checked'),function(i){cats.push(i.value)});
fetch(form.getAttribute("action"),{method:"POST",headers:{"Content-Type":"application/json",
Accept:"application/json","X-CSRF-Token":f.csrf_token.value,"X-Consentgate-Client":"banner"},
body:JSON.stringify({action:b.value,categories:cats,next:f.next.value,lang:f.lang.value})})
.then(function(r){return r.ok?r.json():null})
.then(function(r){if(r&&Array.isArray(r.granted))done(form,r);else fallback()},fallback)});
if(B){B.addEventListener("keydown",function(e){var x=B.querySelector("details");
if(e.key==="Escape"&&x&&x.open){x.open=false;x.querySelector("summary").focus()}});
var ae=d.activeElement;if(!ae||ae===d.body||ae===d.documentElement)B.querySelector("button").focus({preventScroll:true})}
})();
