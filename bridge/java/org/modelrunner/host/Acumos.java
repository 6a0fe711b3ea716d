package org.modelrunner.host;

import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Acumos generic-model-runner models: {@code static List<?> m(String)}. The input message becomes rows (the
 * elements of its only field when that is a repeated message, else the message itself), each row its scalar
 * values in field order (nested messages flattened, repeated values expanded), as CSV lines or a JSON array
 * of objects. The returned list fills the output message's only repeated field (or, failing that, its first
 * field: the whole list if repeated, else the first element).
 */
final class Acumos {
    boolean json, header;
    Codecs.MsgCodec in;
    String rowsField;
    Schema.Field target;
    Codecs.FieldCodec out;

    static Schema.Field targetField(Schema.Msg out) {
        if (out.fields.isEmpty()) return null;
        Schema.Field rep = null;
        int n = 0;
        for (Schema.Field f : out.fields) if (f.repeated && !f.isMap()) { rep = f; n++; }
        return n == 1 ? rep : out.fields.get(0);
    }

    @SuppressWarnings("unchecked")
    byte[] call(MethodHandle invoker, byte[] req) throws Throwable {
        Map<String, Object> msg = (Map<String, Object>) in.read(new Wire.In(req), req.length);
        List<Object> rows = rowsField != null ? (List<Object>) msg.get(rowsField) : Collections.singletonList(msg);
        String text = json ? Json.write(rows) : csv(rows);
        Object r = (Object) invoker.invokeExact(new Object[] {text});
        if (out == null || r == null) return Slot.EMPTY;
        List<Object> list = new ArrayList<>();
        if (r instanceof Collection) list.addAll((Collection<?>) r);
        else if (r.getClass().isArray() && !(r instanceof byte[])) for (Object o : Codecs.elements(r)) list.add(o);
        else list.add(r);
        Wire.Out o = new Wire.Out(64);
        try {
            if (target.repeated) out.write(list, o);
            else if (!list.isEmpty()) out.write(list.get(0), o);
        } catch (RuntimeException e) {
            throw new Slot.Binding.OutputError(e);
        }
        return o.toByteArray();
    }

    private String csv(List<Object> rows) {
        StringBuilder sb = new StringBuilder();
        if (header && !rows.isEmpty()) {
            List<String> names = new ArrayList<>();
            flattenNames("", rows.get(0), names);
            appendLine(sb, names);
        }
        for (Object row : rows) {
            List<String> cells = new ArrayList<>();
            flatten(row, cells);
            appendLine(sb, cells);
        }
        return sb.toString();
    }

    private static void appendLine(StringBuilder sb, List<String> cells) {
        if (sb.length() > 0) sb.append('\n');
        for (int i = 0; i < cells.size(); i++) {
            if (i > 0) sb.append(',');
            String c = cells.get(i);
            if (c.indexOf(',') >= 0 || c.indexOf('"') >= 0 || c.indexOf('\n') >= 0) sb.append('"').append(c.replace("\"", "\"\"")).append('"');
            else sb.append(c);
        }
    }

    private static void flatten(Object v, List<String> out) {
        if (v instanceof Map) for (Object x : ((Map<?, ?>) v).values()) flatten(x, out);
        else if (v instanceof Collection) for (Object x : (Collection<?>) v) flatten(x, out);
        else if (v instanceof byte[]) out.add(Base64.getEncoder().encodeToString((byte[]) v));
        else if (v != null) out.add(String.valueOf(v));
    }

    private static void flattenNames(String prefix, Object v, List<String> out) {
        if (v instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet())
                flattenNames(prefix.isEmpty() ? String.valueOf(e.getKey()) : prefix + "." + e.getKey(), e.getValue(), out);
        } else if (v instanceof Collection) {
            int i = 0;
            for (Object x : (Collection<?>) v) flattenNames(prefix + "." + i++, x, out);
        } else if (v != null) out.add(prefix);
    }
}
