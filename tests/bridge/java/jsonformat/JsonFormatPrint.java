import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.util.JsonFormat;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;

/**
 * protobuf-java's JsonFormat, the Acumos runner's JSON: {@code FILE (NAME BYTES_FILE)...} prints each message as
 * JsonFormat.printer().preservingProtoFieldNames() does; {@code --parse FILE (NAME JSON_FILE)...} parses each JSON
 * with JsonFormat.parser() and prints the message's bytes in base64, or "ERROR " and the reason. Args: a
 * FileDescriptorProto file, then the pairs; each answer on stdout followed by a NUL.
 */
public class JsonFormatPrint {
    public static void main(String[] args) throws Exception {
        boolean parse = args[0].equals("--parse");
        int first = parse ? 1 : 0;
        FileDescriptor fd = FileDescriptor.buildFrom(FileDescriptorProto.parseFrom(Files.readAllBytes(Path.of(args[first]))), new FileDescriptor[0]);
        JsonFormat.Printer printer = JsonFormat.printer().preservingProtoFieldNames();
        StringBuilder out = new StringBuilder();
        for (int i = first + 1; i + 1 < args.length; i += 2) {
            Descriptor d = fd.findMessageTypeByName(args[i]);
            byte[] data = Files.readAllBytes(Path.of(args[i + 1]));
            if (parse) {
                DynamicMessage.Builder b = DynamicMessage.newBuilder(d);
                try {
                    JsonFormat.parser().merge(new String(data, StandardCharsets.UTF_8), b);
                    out.append(Base64.getEncoder().encodeToString(b.build().toByteArray()));
                } catch (Exception e) {
                    out.append("ERROR ").append(e.getMessage());
                }
            } else out.append(printer.print(DynamicMessage.parseFrom(d, data)));
            out.append('\0');
        }
        System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
        System.out.flush();
    }
}
